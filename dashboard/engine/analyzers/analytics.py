"""Analyzers over each tenant's business figures, read from the analytics server through the
orchestrator (audited like any call), so the dashboard never imports a server module:
a weekday on which many more calls are missed than on the others, and staff members whose
coming weeks are fully booked."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta as td
from typing import Any

from askpro.models import Company
from mcp_core.contracts import SYSTEM_PRINCIPAL
from mcp_core.pipeline import call_operation
from mcp_core.registry import get_registry

from ..base import AnalysisContext, Analyzer, Finding, severity_at_least

WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


class _AnalyticsAnalyzer(Analyzer):
    def unavailable(self) -> str | None:
        if get_registry().get_server("analytics") is None:
            return "the analytics server is not registered"
        if not get_registry().get_server("analytics").is_configured():
            return "the analytics server needs PostgreSQL"
        return None

    def _tenants(self) -> list[Company]:
        return list(Company.objects.filter(is_active=True).order_by("pk")[: self.option("max_tenants")])

    @staticmethod
    def _call(operation: str, company: Company, params: dict[str, Any]) -> dict[str, Any]:
        response = call_operation(
            "analytics",
            operation,
            params,
            principal=SYSTEM_PRINCIPAL,
            tenant=company.slug,
            transport="engine",
        )
        if not response.success:
            raise RuntimeError(
                f"analytics.{operation}: {response.error['code']}: {response.error['message']}"
            )
        return response.data


class MissedCallsByWeekday(_AnalyticsAnalyzer):
    name = "missed_calls_by_weekday"
    description = "A weekday on which a tenant misses far more calls than on its other days."
    defaults = {"period_days": 28, "min_calls": 20, "min_rate": 0.15, "min_factor": 1.5, "max_tenants": 500}

    def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        findings = []
        for company in self._tenants():
            today = ctx.now.date()
            since = today - td(days=self.option("period_days") - 1)
            data = self._call("get_call_funnel", company, {"date_from": str(since), "date_to": str(today)})
            per_day: dict[int, list[int]] = defaultdict(lambda: [0, 0])
            for cell in data["by_hour"]:  # at most 7 x 24 rows, already counted by the database
                per_day[cell["weekday"]][0] += cell["calls"]
                per_day[cell["weekday"]][1] += cell["missed"]
            for weekday, (calls, missed) in sorted(per_day.items()):
                other_calls = sum(c for d, (c, _) in per_day.items() if d != weekday)
                other_missed = sum(m for d, (_, m) in per_day.items() if d != weekday)
                rate = missed / calls if calls else 0.0
                other_rate = other_missed / other_calls if other_calls else 0.0
                if (
                    calls < self.option("min_calls")
                    or rate < self.option("min_rate")
                    or rate < other_rate * self.option("min_factor")
                ):
                    continue
                day = WEEKDAYS[weekday - 1]
                findings.append(
                    Finding(
                        fingerprint=f"tenant:{company.pk}:weekday:{weekday}",
                        severity=severity_at_least(rate, [(0, "medium"), (0.35, "high")]),
                        title=f"{company.name}: {rate:.0%} of {day} calls are missed (other days: {other_rate:.0%})",
                        evidence={
                            "tenant": company.slug,
                            "period": {"date_from": str(since), "date_to": str(today)},
                            "weekday": day,
                            "calls": calls,
                            "missed": missed,
                            "missed_rate": round(rate, 4),
                            "other_days_calls": other_calls,
                            "other_days_missed_rate": round(other_rate, 4),
                            "source": "analytics.get_call_funnel",
                        },
                        tenant_ids=(company.pk,),
                        suggested_action=(
                            f"Check {company.name}'s {day} calls (Retell disconnection reasons, concurrency limit, "
                            "agent availability); add capacity or forward to a person on that day."
                        ),
                    )
                )
        return findings


class StaffFullyBooked(_AnalyticsAnalyzer):
    name = "staff_fully_booked"
    description = "Staff members whose working hours in the coming weeks are (nearly) all booked."
    defaults = {"ahead_days": 14, "min_utilisation": 0.9, "max_tenants": 500}

    def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        findings = []
        for company in self._tenants():
            start = ctx.now.date()
            end = start + td(days=self.option("ahead_days") - 1)
            data = self._call("get_utilisation", company, {"date_from": str(start), "date_to": str(end)})
            for staff in data["staff"]:
                share = staff["utilisation"]["current"]
                if share is None or share < self.option("min_utilisation"):
                    continue
                findings.append(
                    Finding(
                        fingerprint=f"tenant:{company.pk}:staff:{staff['staff_id']}",
                        severity=severity_at_least(share, [(0, "medium"), (1.0, "high")]),
                        title=(
                            f"{company.name} / {staff['name']}: {share:.0%} booked over the next "
                            f"{self.option('ahead_days')} days"
                        ),
                        evidence={
                            "tenant": company.slug,
                            "staff_id": staff["staff_id"],
                            "period": {"date_from": str(start), "date_to": str(end)},
                            "booked_minutes": staff["booked_minutes"]["current"],
                            "working_minutes": staff["working_minutes"]["current"],
                            "utilisation": share,
                            "source": "analytics.get_utilisation",
                        },
                        tenant_ids=(company.pk,),
                        suggested_action=(
                            f"Callers cannot get {staff['name']} soon: open more working hours, let another "
                            "staff member take the service, or tell the agent to offer other staff."
                        ),
                    )
                )
        return findings
