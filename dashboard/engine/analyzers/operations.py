"""Analyzers over background work: the Celery queue and incoming webhooks."""

from __future__ import annotations

from datetime import timedelta as td

from ... import integrations
from ..base import AnalysisContext, Analyzer, Finding, severity_at_least


class QueueBacklog(Analyzer):
    name = "queue_backlog"
    description = "Messages waiting in the task queues above the threshold."
    defaults = {"max_waiting": 1000}

    def unavailable(self) -> str | None:
        depth = integrations.queue_depth()
        return None if depth["available"] else depth["reason"]

    def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        depth = integrations.queue_depth()
        limit = self.option("max_waiting")
        findings = []
        for queue, waiting in depth["queues"].items():
            if waiting <= limit:
                continue
            findings.append(
                Finding(
                    fingerprint=queue,
                    severity=severity_at_least(waiting / limit, [(1, "medium"), (5, "high")]),
                    title=f"Queue {queue!r} has {waiting} tasks waiting (threshold {limit})",
                    evidence={
                        "at": ctx.now.isoformat(),
                        "queue": queue,
                        "waiting": waiting,
                        "threshold": limit,
                    },
                    suggested_action=(
                        "Check that the workers are up and consuming (celery inspect active); if they are, "
                        "add workers or find the task type that floods the queue."
                    ),
                )
            )
        return findings


class WebhookFailures(Analyzer):
    name = "webhook_failures"
    description = "Incoming webhooks that failed (dead letters) and pile up unprocessed."
    defaults = {"max_failed": 10, "window_hours": 24}
    can_heal = True
    heal_description = "Re-queues the failed webhook events of the window for another attempt."

    def unavailable(self) -> str | None:
        backlog = integrations.webhook_backlog()
        return None if backlog["available"] else backlog["reason"]

    def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        backlog = integrations.webhook_backlog()
        failed = int(backlog.get("failed", 0))
        if failed < self.option("max_failed"):
            return []
        return [
            Finding(
                fingerprint="failed",
                severity=severity_at_least(failed / self.option("max_failed"), [(1, "medium"), (5, "high")]),
                title=f"{failed} webhook events failed and wait for a retry",
                evidence={"at": ctx.now.isoformat(), **backlog},
                suggested_action=(
                    "Read the error of the newest failed events (webhooks admin): a signature error means "
                    "a rotated secret; a processing error, a bug. Then retry them."
                ),
            )
        ]

    def heal(self, finding: Finding, ctx: AnalysisContext) -> str:
        count = integrations.webhook_retry_failed(ctx.now - td(hours=self.option("window_hours")))
        return (
            f"re-queued {count} failed webhook events (received in the last {self.option('window_hours')} h)"
        )
