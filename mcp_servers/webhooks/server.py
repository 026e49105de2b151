"""The webhook server: the stored provider events, their processing state, and replay.

Tenant scoping (declared honestly): these operations are `tenant_scoped=False` because a
platform key must be able to see every event, including dead letters whose tenant could not
be resolved. They are *tenant-aware* instead: a tenant key sees and acts on its own tenant's
events only (events without a tenant are platform-only); a platform key sees all, and may
narrow to one tenant with the `tenant` parameter. An event of another tenant is reported as
not found, exactly like a missing one.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec
from django.db.models import Count, F, Q, QuerySet, Sum
from django.utils import timezone

from askpro.models import Company
from mcp_core.contracts import ErrorCode, MCPError, OperationContext
from mcp_core.health import HealthResult, HealthStatus
from mcp_core.registry import get_registry
from mcp_core.schemas import BIGINT_MAX, Params, Result
from mcp_core.server import MCPServer, ServerGauge, operation

from .models import RejectedDelivery, WebhookEvent
from .services import webhook_replay

Meta = msgspec.Meta
# Any provider a server declares (mcp_core.webhooks); an unknown one is refused by _provider().
ProviderName = Annotated[
    str, Meta(pattern="^[a-z][a-z0-9_]{0,9}$", description="A webhook provider, e.g. stripe, calcom, retell")
]
StatusName = Literal["received", "processing", "processed", "failed"]
TenantParam = (
    Annotated[str, Meta(max_length=100, description="Platform keys: only this tenant's events (slug or id)")]
    | None
)


class ListEventsParams(Params):
    provider: ProviderName | None = None
    type: Annotated[str, Meta(max_length=100, description="Exact event type, e.g. invoice.paid")] | None = (
        None
    )
    status: StatusName | None = None
    since: Annotated[dt.datetime, Meta(description="Received at or after (ISO 8601)")] | None = None
    until: Annotated[dt.datetime, Meta(description="Received before (ISO 8601)")] | None = None
    tenant: TenantParam = None
    limit: Annotated[int, Meta(ge=1, le=200)] = 50
    before_id: (
        Annotated[int, Meta(ge=1, le=BIGINT_MAX, description="Page: events with a smaller id")] | None
    ) = None


class EventSummary(Result):
    id: int
    provider: str
    event_id: str
    type: str
    status: str
    tenant: str | None
    attempts: int
    duplicate_count: int
    last_error: str
    received_at: dt.datetime
    processed_at: dt.datetime | None


class ListEventsResult(Result):
    events: list[EventSummary]
    next_before_id: int | None


class GetEventParams(Params):
    id: Annotated[int, Meta(ge=1, le=BIGINT_MAX)]


class EventDetail(EventSummary):
    verified_by: str
    result: str
    next_attempt_at: dt.datetime | None
    payload: dict[str, Any]


class StatsParams(Params):
    hours: Annotated[int, Meta(ge=1, le=24 * 90, description="Look back this many hours")] = 24
    tenant: TenantParam = None


class ProviderStats(Result):
    provider: str
    received: int
    processed: int
    pending: int
    failed: int
    duplicates: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_max_ms: float | None
    refused_signatures: int | None  # platform keys only: refusals carry no tenant


class StatsResult(Result):
    hours: int
    providers: list[ProviderStats]


class ReplayParams(Params):
    id: Annotated[int, Meta(ge=1, le=BIGINT_MAX)]
    force: Annotated[bool, Meta(description="Also re-run an event that was already processed")] = False


class ReplayResult(Result):
    id: int
    outcome: Literal["queued", "already_processed", "in_progress"]
    status: str


class RetryFailedParams(Params):
    provider: ProviderName | None = None
    since: dt.datetime | None = None
    tenant: TenantParam = None
    limit: Annotated[int, Meta(ge=1, le=1000)] = 100


class RetryFailedResult(Result):
    queued: int
    ids: list[int]


def _visible(ctx: OperationContext, tenant: str | None = None) -> QuerySet[WebhookEvent]:
    """The events this principal may see (see the module docstring)."""
    events = WebhookEvent.objects.all()
    if ctx.principal.tenant_id is not None:
        if tenant not in (None, "") and str(tenant) not in _own_identifiers(ctx.principal.tenant_id):
            raise MCPError(
                ErrorCode.FORBIDDEN,
                "tenant: this key is bound to its own tenant",
                details={"field": "tenant"},
            )
        return events.filter(tenant_id=ctx.principal.tenant_id)
    wanted = tenant if tenant not in (None, "") else ctx.request.tenant
    if wanted in (None, ""):
        return events
    lookup = {"pk": int(wanted)} if str(wanted).isdigit() else {"slug": wanted}
    company_id = Company.objects.filter(**lookup).values_list("pk", flat=True).first()
    if company_id is None:
        raise MCPError(ErrorCode.NOT_FOUND, f"tenant: no tenant {wanted!r}", details={"field": "tenant"})
    return events.filter(tenant_id=company_id)


def _providers() -> list[str]:
    """Every provider some server declares inbound webhooks for."""
    return sorted(get_registry().webhooks)


def _provider(name: str) -> str:
    if name not in get_registry().webhooks:
        raise MCPError(
            ErrorCode.VALIDATION_ERROR,
            f"provider: no webhook provider {name!r} (one of {', '.join(_providers())})",
            details={"field": "provider"},
        )
    return name


def _own_identifiers(tenant_id: int) -> set[str]:
    slug = Company.objects.filter(pk=tenant_id).values_list("slug", flat=True).first()
    return {str(tenant_id), slug or ""}


def _get(ctx: OperationContext, event_id: int) -> WebhookEvent:
    event = _visible(ctx).select_related("tenant").filter(pk=event_id).first()
    if event is None:
        raise MCPError(ErrorCode.NOT_FOUND, f"id: no webhook event {event_id}", details={"field": "id"})
    return event


def _summary(event: WebhookEvent) -> dict[str, Any]:
    return {
        "id": event.pk,
        "provider": event.provider,
        "event_id": event.event_id,
        "type": event.type,
        "status": event.status,
        "tenant": event.tenant.slug if event.tenant_id else None,
        "attempts": event.attempts,
        "duplicate_count": event.duplicate_count,
        "last_error": event.last_error,
        "received_at": event.received_at,
        "processed_at": event.processed_at,
    }


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    index = min(len(values) - 1, max(0, round(q * (len(values) - 1))))
    return round(values[index], 2)


class WebhookServer(MCPServer):
    """Stored Stripe, Cal.com and Retell webhook events: inspect, measure, replay."""

    name = "webhooks"
    description = (
        "Incoming Stripe, Cal.com and Retell webhooks: events, processing state, dead letters, replay."
    )

    @operation(
        description="""List stored webhook events, newest first, filtered by provider, type, status
        (received, processing, processed, failed = dead letter) and received time. Tenant keys
        see their own tenant's events; platform keys see all (or one tenant with `tenant`).""",
        params=ListEventsParams,
        result=ListEventsResult,
        scope="read",
        tenant_scoped=False,
        read_only=True,
    )
    def list_events(self, ctx: OperationContext, params: ListEventsParams) -> ListEventsResult:
        if params.since and params.until and params.until <= params.since:
            raise MCPError(
                ErrorCode.VALIDATION_ERROR, "until: must be after since", details={"field": "until"}
            )
        events = _visible(ctx, params.tenant).select_related("tenant").order_by("-pk")
        if params.provider:
            events = events.filter(provider=_provider(params.provider))
        if params.type:
            events = events.filter(type=params.type)
        if params.status:
            events = events.filter(status=params.status)
        if params.since:
            events = events.filter(received_at__gte=params.since)
        if params.until:
            events = events.filter(received_at__lt=params.until)
        if params.before_id:
            events = events.filter(pk__lt=params.before_id)
        rows = list(events[: params.limit + 1])
        more = len(rows) > params.limit
        rows = rows[: params.limit]
        return ListEventsResult(
            events=[EventSummary(**_summary(e)) for e in rows],
            next_before_id=rows[-1].pk if more and rows else None,
        )

    @operation(
        description="One stored webhook event with its verified payload, attempts, last error and result.",
        params=GetEventParams,
        result=EventDetail,
        scope="read",
        tenant_scoped=False,
        read_only=True,
    )
    def get_event(self, ctx: OperationContext, params: GetEventParams) -> EventDetail:
        event = _get(ctx, params.id)
        return EventDetail(
            **_summary(event),
            verified_by=event.verified_by,
            result=event.result,
            next_attempt_at=event.next_attempt_at,
            payload=event.payload,
        )

    @operation(
        description="""Per provider over the last N hours: events received, processed, pending,
        failed (dead letter), duplicate deliveries, processing latency (received -> processed,
        p50/p95/max in ms) and, for platform keys, deliveries refused for a bad signature.""",
        params=StatsParams,
        result=StatsResult,
        scope="read",
        tenant_scoped=False,
        read_only=True,
    )
    def get_webhook_stats(self, ctx: OperationContext, params: StatsParams) -> StatsResult:
        since = timezone.now() - dt.timedelta(hours=params.hours)
        events = _visible(ctx, params.tenant).filter(received_at__gte=since)
        counts = {
            row["provider"]: row
            for row in events.values("provider").annotate(
                received=Count("id"),
                processed=Count("id", filter=Q(status=WebhookEvent.Status.PROCESSED)),
                failed=Count("id", filter=Q(status=WebhookEvent.Status.FAILED)),
                pending=Count(
                    "id",
                    filter=Q(status__in=[WebhookEvent.Status.RECEIVED, WebhookEvent.Status.PROCESSING]),
                ),
                duplicates=Sum("duplicate_count"),
            )
        }
        refused: dict[str, int] = {}
        if ctx.principal.is_platform:
            for row in (
                RejectedDelivery.objects.filter(hour__gte=since.replace(minute=0, second=0, microsecond=0))
                .values("provider")
                .annotate(total=Sum("count"))
            ):
                refused[row["provider"]] = row["total"]
        providers = []
        for provider in _providers():
            row = counts.get(provider, {})
            # Latency from the newest 5000 processed events: enough for percentiles, bounded.
            latencies = [
                d.total_seconds() * 1000
                for d in events.filter(provider=provider, processed_at__isnull=False)
                .order_by("-pk")
                .annotate(latency=F("processed_at") - F("received_at"))
                .values_list("latency", flat=True)[:5000]
            ]
            providers.append(
                ProviderStats(
                    provider=provider,
                    received=row.get("received", 0),
                    processed=row.get("processed", 0),
                    pending=row.get("pending", 0),
                    failed=row.get("failed", 0),
                    duplicates=row.get("duplicates") or 0,
                    latency_p50_ms=_percentile(latencies, 0.5),
                    latency_p95_ms=_percentile(latencies, 0.95),
                    latency_max_ms=round(max(latencies), 2) if latencies else None,
                    refused_signatures=refused.get(provider, 0) if ctx.principal.is_platform else None,
                )
            )
        return StatsResult(hours=params.hours, providers=providers)

    @operation(
        description="""Process a stored event again: a dead letter (failed) or waiting event is reset
        with a fresh attempt budget and queued. An event already processed is left alone unless
        force=true (handlers are idempotent, so re-running re-applies the same state). Calling it
        twice has the effect of calling it once.""",
        params=ReplayParams,
        result=ReplayResult,
        scope="admin",
        tenant_scoped=False,
        idempotent=True,
    )
    def replay_event(self, ctx: OperationContext, params: ReplayParams) -> ReplayResult:
        event = _get(ctx, params.id)
        outcome = webhook_replay(event, force=params.force)
        status = WebhookEvent.objects.filter(pk=event.pk).values_list("status", flat=True).get()
        return ReplayResult(id=event.pk, outcome=outcome, status=status)

    @operation(
        description="""Queue every dead-lettered (failed) event again, optionally only one provider's
        or those received since a time; oldest first, up to `limit`.""",
        params=RetryFailedParams,
        result=RetryFailedResult,
        scope="admin",
        tenant_scoped=False,
        idempotent=True,
    )
    def retry_failed(self, ctx: OperationContext, params: RetryFailedParams) -> RetryFailedResult:
        events = _visible(ctx, params.tenant).filter(status=WebhookEvent.Status.FAILED)
        if params.provider:
            events = events.filter(provider=_provider(params.provider))
        if params.since:
            events = events.filter(received_at__gte=params.since)
        ids = []
        for event in events.order_by("received_at")[: params.limit]:
            if webhook_replay(event) == "queued":
                ids.append(event.pk)
        return RetryFailedResult(queued=len(ids), ids=ids)

    def gauges(self) -> list[ServerGauge]:
        """The backlog for /metrics: events received and not yet processed, per provider and status."""
        waiting = [WebhookEvent.Status.RECEIVED, WebhookEvent.Status.PROCESSING]
        counts = {
            (row["provider"], row["status"]): row["n"]
            for row in WebhookEvent.objects.filter(status__in=waiting)
            .values("provider", "status")
            .annotate(n=Count("pk"))
            .order_by()
        }
        return [
            ServerGauge(
                "webhook_backlog",
                "Webhook events waiting to be processed (received or processing), by provider and status.",
                {"provider": provider, "status": status},
                counts.get((provider, status), 0),
            )
            for provider in _providers()
            for status in waiting
        ]

    def health(self) -> HealthResult:
        """Unhealthy when events pile up unprocessed; degraded with recent dead letters."""
        now = timezone.now()
        stuck = WebhookEvent.objects.filter(
            status__in=[WebhookEvent.Status.RECEIVED, WebhookEvent.Status.PROCESSING],
            received_at__lt=now - dt.timedelta(minutes=15),
        ).count()
        dead = WebhookEvent.objects.filter(
            status=WebhookEvent.Status.FAILED, updated_at__gte=now - dt.timedelta(hours=1)
        ).count()
        if stuck:
            return HealthResult(HealthStatus.UNHEALTHY, f"{stuck} event(s) waiting for more than 15 minutes")
        if dead:
            return HealthResult(HealthStatus.DEGRADED, f"{dead} event(s) dead-lettered in the last hour")
        return HealthResult(HealthStatus.HEALTHY, "no backlog, no recent dead letters")
