"""The business analyzer: calls that did not end in an appointment, per branch."""

from __future__ import annotations

from datetime import timedelta as td

from django.db.models import Case, Count, Exists, OuterRef, Value, When

from askpro.models import Appointment, Branch, Call

from ..base import AnalysisContext, Analyzer, Finding, severity_at_least

# An appointment that failed or was cancelled is not a booking the call achieved.
NOT_BOOKED = (Appointment.Status.FAILED, Appointment.Status.CANCELLED)


class UnbookedCalls(Analyzer):
    name = "unbooked_calls"
    description = "Branches where more calls end without an appointment than in the period before."
    defaults = {"period_days": 7, "min_calls": 20, "min_increase": 0.10}

    def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        period = td(days=self.option("period_days"))
        current_since, previous_since = ctx.now - period, ctx.now - 2 * period
        booked = Appointment.objects.filter(call=OuterRef("pk")).exclude(status__in=NOT_BOOKED)
        calls = Call.objects.filter(
            started_at__gte=previous_since, started_at__lt=ctx.now, branch__isnull=False
        ).annotate(current=Case(When(started_at__gte=current_since, then=Value(True)), default=Value(False)))
        # Two grouped counts rather than one with EXISTS in the select list: in WHERE, PostgreSQL
        # turns EXISTS into a hashed semi-join; in the select list it probes once per call, which
        # took 30 s on a million calls.
        periods: dict[int, dict[str, int]] = {}

        def entry(branch_id: int) -> dict[str, int]:
            return periods.setdefault(
                branch_id, {"current": 0, "current_unbooked": 0, "previous": 0, "previous_unbooked": 0}
            )

        for row in calls.values("branch_id", "current").annotate(n=Count("id")).order_by():
            prefix = "current" if row["current"] else "previous"
            entry(row["branch_id"])[prefix] = row["n"]
            entry(row["branch_id"])[f"{prefix}_unbooked"] += row["n"]
        for row in (
            calls.filter(Exists(booked)).values("branch_id", "current").annotate(n=Count("id")).order_by()
        ):
            prefix = "current" if row["current"] else "previous"
            entry(row["branch_id"])[f"{prefix}_unbooked"] -= row["n"]
        candidates = []
        for branch_id, row in periods.items():
            if row["current"] < self.option("min_calls") or row["previous"] < self.option("min_calls"):
                continue
            share = row["current_unbooked"] / row["current"]
            before = row["previous_unbooked"] / row["previous"]
            if share - before >= self.option("min_increase"):
                candidates.append(({"branch_id": branch_id, **row}, share, before))
        branches = Branch.objects.select_related("company").in_bulk(
            [r["branch_id"] for r, _, _ in candidates]
        )
        findings = []
        for row, share, before in candidates:
            branch = branches[row["branch_id"]]
            findings.append(
                Finding(
                    fingerprint=f"branch:{branch.pk}",
                    severity=severity_at_least(share - before, [(0, "medium"), (0.25, "high")]),
                    title=(
                        f"{branch.company.name} / {branch.name}: {share:.0%} of calls ended without an "
                        f"appointment (before: {before:.0%})"
                    ),
                    evidence={
                        "window": {"since": current_since.isoformat(), "until": ctx.now.isoformat()},
                        "previous_window": {
                            "since": previous_since.isoformat(),
                            "until": current_since.isoformat(),
                        },
                        "tenant": branch.company.slug,
                        "branch_id": branch.pk,
                        "calls": row["current"],
                        "unbooked": row["current_unbooked"],
                        "unbooked_share": round(share, 4),
                        "previous_calls": row["previous"],
                        "previous_unbooked": row["previous_unbooked"],
                        "previous_unbooked_share": round(before, 4),
                    },
                    suggested_action=(
                        f"Listen to a few of {branch.name}'s unbooked calls (Retell transcripts): check the "
                        "agent prompt, the branch's Cal.com event type and whether its calendar has free slots."
                    ),
                    tenant_ids=(branch.company_id,),
                )
            )
        return findings
