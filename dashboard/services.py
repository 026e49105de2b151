"""Writes the dashboard pages make: stored health checks, recommendation status, console calls."""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import connection, connections, transaction
from django.utils import timezone

from mcp_core.contracts import MCPResponse
from mcp_core.health import HealthSnapshot, run_checks_coalesced
from mcp_core.models import HealthRun
from mcp_core.operators import OperatorRights
from mcp_core.pipeline import call_operation

from .models import Recommendation

# What each action on the improvements page may do: from these statuses, to that status.
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "accept": (("open",), Recommendation.Status.ACCEPTED),
    "dismiss": (("open", "accepted"), Recommendation.Status.DISMISSED),
    "apply": (("open", "accepted"), Recommendation.Status.APPLIED),
    "reopen": (("dismissed", "applied"), Recommendation.Status.OPEN),
}


class ActionError(ValueError):
    pass


def health_checks_run(*, trigger: str = HealthRun.Trigger.DASHBOARD) -> HealthSnapshot:
    """Every check now through mcp_core's coalesced run (which stores them for the dashboard), or
    the stored run when another is under way or one ran moments ago."""
    return run_checks_coalesced(trigger=trigger)


def recommendation_set_status(*, rec_id: int, action: str, user) -> Recommendation:
    """Accept, dismiss, mark applied or reopen a recommendation; raises ActionError if not allowed."""
    if action not in TRANSITIONS:
        raise ActionError(f"action: unknown action {action!r}")
    allowed_from, target = TRANSITIONS[action]
    with transaction.atomic():
        rec = Recommendation.objects.select_for_update().filter(pk=rec_id).first()
        if rec is None:
            raise ActionError(f"recommendation: no recommendation {rec_id}")
        if rec.status not in allowed_from:
            raise ActionError(f"status: a {rec.status} recommendation cannot be {target}")
        if (
            target == Recommendation.Status.OPEN
            and Recommendation.objects.filter(
                analyzer=rec.analyzer, fingerprint=rec.fingerprint, status__in=Recommendation.ACTIVE_STATUSES
            ).exists()
        ):
            raise ActionError("status: the same finding is already open again; act on that one")
        rec.status = target
        rec.status_changed_at = timezone.now()
        rec.status_changed_by = user.get_username()
        rec.save(update_fields=["status", "status_changed_at", "status_changed_by"])
    return rec


def console_call(
    *, rights: OperatorRights, service: str, operation: str, params: dict[str, Any], tenant: str | None
) -> MCPResponse:
    """Run one operation through the orchestrator as the signed-in operator, with their own rights
    on the tenant they chose (see mcp_core.operators); audited as 'console' under their name."""
    return call_operation(
        service,
        operation,
        params,
        principal=rights.principal(tenant or None),
        tenant=tenant or None,
        transport="console",
    )


# The operations the Analytics page shows, in the order it shows them.
# (Not get_overview: its figures are all in these answers; see analytics_page.HEADLINES.)
ANALYTICS_PAGE_OPERATIONS = (
    "get_call_funnel",
    "get_appointment_stats",
    "get_utilisation",
    "get_revenue",
    "get_customer_cohorts",
    "get_messaging",
)
# Operations of the page that read the whole tenant and take no branch_id (messages carry none).
ANALYTICS_WHOLE_TENANT = frozenset({"get_messaging"})


# The page's statements run on this many connections at once (the first call runs alone); with
# DB_POOL each takes a pooled connection while it runs.
ANALYTICS_PAGE_CONCURRENCY = 3


def analytics_report(
    *, rights: OperatorRights, tenant: str, params: dict[str, Any]
) -> dict[str, MCPResponse]:
    """The Analytics page's figures: each operation through the orchestrator as the signed-in
    operator, with their own rights on that tenant. A refused first call (a bad date, a tenant
    they may not see) stops there, so one mistake is reported and audited once.

    The others then run ANALYTICS_PAGE_CONCURRENCY at a time, each on a connection of its own thread: every one is a
    single read-only statement, and the page waits for the slowest of each round, not the sum.
    Inside a transaction (a test's, or ATOMIC_REQUESTS) they run one after another: another
    connection would not see what that transaction wrote."""
    principal = rights.principal(tenant)
    tenant_wide = {key: value for key, value in params.items() if key != "branch_id"}

    def one(name: str) -> MCPResponse:
        return call_operation(
            "analytics",
            name,
            tenant_wide if name in ANALYTICS_WHOLE_TENANT else params,
            principal=principal,
            tenant=tenant,
            transport="console",
        )

    first, *rest = ANALYTICS_PAGE_OPERATIONS
    answers = {first: one(first)}
    if not answers[first].success:
        return answers
    if connection.in_atomic_block or connection.vendor != "postgresql":
        for name in rest:
            answers[name] = one(name)
            if not answers[name].success:
                break
        return answers
    with ThreadPoolExecutor(
        max_workers=ANALYTICS_PAGE_CONCURRENCY, thread_name_prefix="analytics-page"
    ) as pool:
        # copy_context: the request's log fields and trace context follow each call
        futures = {
            name: pool.submit(contextvars.copy_context().run, _in_own_thread, one, name) for name in rest
        }
        answers.update((name, future.result()) for name, future in futures.items())
    return answers


def _in_own_thread(call, name: str) -> MCPResponse:
    try:
        return call(name)
    finally:
        connections.close_all()  # this thread's connections, back to the pool or closed


def analytics_export(*, rights: OperatorRights, tenant: str, params: dict[str, Any]) -> MCPResponse:
    """One CSV report through the orchestrator as the operator (analytics_export_csv)."""
    return call_operation(
        "analytics",
        "export_csv",
        params,
        principal=rights.principal(tenant),
        tenant=tenant,
        transport="console",
    )
