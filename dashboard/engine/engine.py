"""Runs every registered analyzer, turns findings into recommendations, records the run."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import timedelta as td

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from askpro.models import Company
from mcp_core import live
from mcp_core.audit import audit_record

from ..models import ImprovementRun, Recommendation
from .base import AnalysisContext, Analyzer, Finding
from .registry import get_analyzers

logger = logging.getLogger(__name__)

Progress = Callable[[str, dict], None]
# A first run may find hundreds of things at once; the pages refetch on any one event anyway.
MAX_LIVE_EVENTS_PER_ANALYZER = 5
# The live event's title for a finding about a tenant (see _run_one).
TENANT_FINDING_TITLE = "a finding about a tenant: see the improvements page"


def _existing_tenants(finding: Finding) -> list[int]:
    # Who may see the recommendation follows these (dashboard.selectors.visible_recommendations).
    ids = {int(t) for t in finding.tenant_ids if t}
    return list(Company.objects.filter(pk__in=ids).values_list("pk", flat=True)) if ids else []


def _upsert(analyzer: Analyzer, finding: Finding, now) -> tuple[str, Recommendation | None]:
    """Create or refresh the active recommendation for a finding: 'created', 'updated' or 'snoozed'."""
    active = Recommendation.objects.select_for_update().filter(
        analyzer=analyzer.name, fingerprint=finding.fingerprint, status__in=Recommendation.ACTIVE_STATUSES
    )
    rec = active.first()
    if rec is not None:
        rec.severity = finding.severity
        rec.title = finding.title[:300]
        rec.evidence = finding.evidence
        rec.suggested_action = finding.suggested_action
        rec.last_seen_at = now
        rec.times_seen += 1
        rec.save(
            update_fields=["severity", "title", "evidence", "suggested_action", "last_seen_at", "times_seen"]
        )
        rec.tenants.set(_existing_tenants(finding))
        return "updated", rec
    snooze = td(days=settings.IMPROVEMENT_DISMISS_SNOOZE_DAYS)
    if Recommendation.objects.filter(
        analyzer=analyzer.name,
        fingerprint=finding.fingerprint,
        status=Recommendation.Status.DISMISSED,
        status_changed_at__gte=now - snooze,
    ).exists():
        # An operator said no recently; repeating the finding would only be noise.
        return "snoozed", None
    try:
        with transaction.atomic():
            rec = Recommendation.objects.create(
                analyzer=analyzer.name,
                fingerprint=finding.fingerprint[:200],
                severity=finding.severity,
                title=finding.title[:300],
                evidence=finding.evidence,
                suggested_action=finding.suggested_action,
                first_seen_at=now,
                last_seen_at=now,
            )
            rec.tenants.set(_existing_tenants(finding))
    except IntegrityError:
        # Another run created it between our read and our insert: refresh that one instead.
        return _upsert(analyzer, finding, now)
    return "created", rec


def _heal(analyzer: Analyzer, finding: Finding, rec: Recommendation, ctx: AnalysisContext) -> dict:
    """Run the analyzer's safe fix, audit it like a call, and mark the recommendation applied."""
    started = time.perf_counter()
    error = ""
    try:
        with transaction.atomic():
            note = analyzer.heal(finding, ctx)
    except Exception as exc:
        logger.exception("self-healing %s failed for %s", analyzer.name, finding.fingerprint)
        note, error = "", f"{type(exc).__name__}: {exc}"[:500]
    audit_record(
        request_id=uuid.uuid4().hex,
        transport="engine",
        principal_name="system:improvements",
        api_key_id=None,
        user_id=None,
        tenant_id=None,
        service="improvements",
        operation=f"heal_{analyzer.name}"[:80],
        params={"fingerprint": finding.fingerprint, "recommendation": rec.pk},
        error_code="internal_error" if error else None,
        error_message=error,
        duration_ms=(time.perf_counter() - started) * 1000,
        idempotency_key=None,
    )
    if not error:
        rec.status = Recommendation.Status.APPLIED
        rec.status_changed_at = ctx.now
        rec.status_changed_by = "system:improvements"
        rec.note = note[:2000]
        rec.save(update_fields=["status", "status_changed_at", "status_changed_by", "note"])
    return {"analyzer": analyzer.name, "fingerprint": finding.fingerprint, "note": note, "error": error}


class ImprovementEngine:
    """Runs the analyzers one by one; one failing analyzer is recorded and the others still run."""

    def __init__(self, analyzers: list[Analyzer] | None = None) -> None:
        self.analyzers = analyzers if analyzers is not None else get_analyzers()

    def run(self, *, trigger: str = ImprovementRun.Trigger.COMMAND, progress: Progress | None = None):
        now = timezone.now()
        run = ImprovementRun.objects.create(trigger=trigger, started_at=now)
        ctx = AnalysisContext(now=now)
        started = time.perf_counter()
        for index, analyzer in enumerate(self.analyzers, start=1):
            entry = self._run_one(analyzer, ctx, run)
            run.analyzers.append(entry)
            if progress:
                progress(analyzer.name, {**entry, "index": index, "total": len(self.analyzers)})
        run.finished_at = timezone.now()
        run.duration_ms = round((time.perf_counter() - started) * 1000, 1)
        run.save()
        return run

    def _run_one(self, analyzer: Analyzer, ctx: AnalysisContext, run: ImprovementRun) -> dict:
        t0 = time.perf_counter()
        entry = {"name": analyzer.name, "findings": 0, "skipped": None, "error": None}
        try:
            reason = analyzer.unavailable()
            if reason:
                entry["skipped"] = reason
            else:
                created: list[tuple[Recommendation, Finding]] = []
                # A savepoint per analyzer: a failing catalog query must not poison the others.
                with transaction.atomic():
                    findings = analyzer.analyze(ctx)
                    for finding in findings:
                        outcome, rec = _upsert(analyzer, finding, ctx.now)
                        if outcome == "created":
                            run.created += 1
                            created.append((rec, finding))
                        elif outcome == "updated":
                            run.updated += 1
                        if rec is not None and analyzer.healing_enabled:
                            run.healed.append(_heal(analyzer, finding, rec, ctx))
                entry["findings"] = len(findings)
                run.findings += len(findings)
                # Stored (the analyzer's block has ended): open pages hear of each new one.
                for rec, finding in created[:MAX_LIVE_EVENTS_PER_ANALYZER]:
                    # Every stream subscriber gets the event, whatever their tenants: a title
                    # that names a tenant stays on the improvements page, which filters.
                    title = TENANT_FINDING_TITLE if finding.tenant_ids else rec.title
                    live.recommendation_created(rec.pk, rec.analyzer, rec.severity, title)
        except Exception as exc:
            logger.exception("analyzer %s failed", analyzer.name)
            entry["error"] = f"{type(exc).__name__}: {exc}"[:500]
            run.errors.append({"analyzer": analyzer.name, "error": entry["error"]})
        entry["ms"] = round((time.perf_counter() - t0) * 1000, 1)
        return entry


def improvements_run(*, trigger: str, progress: Progress | None = None) -> ImprovementRun:
    """Service entry point for the task, the command and the page."""
    return ImprovementEngine().run(trigger=trigger, progress=progress)
