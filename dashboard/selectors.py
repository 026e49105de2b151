"""Every read the dashboard pages make. Pages never scan the audit log: they read the per-minute
rollups (last hour), the hourly rollups (longer windows) and bounded audit lookups by index.

`tenant_ids` (mcp_core.operators: None = every tenant) narrows what a page shows to an operator
bound to some tenants: call figures, failures, refusals, webhook backlog, message delivery and
recommendations count only their tenants' records. What belongs to no tenant and names none
(stored health checks, breakers, queue depth, pools, task failures per task) stays platform-wide.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from datetime import timedelta as td
from typing import Any

from django.db.models import Count, F, Max, Q, Sum, Window
from django.db.models.functions import RowNumber, Trunc
from django.utils import timezone

from askpro.models import Branch, Company
from mcp_core.contracts import SERVICE_FAILURE_CODES, OutcomeClass, codes_of
from mcp_core.health import HealthResult, HealthStatus, aggregate_status
from mcp_core.metrics import CLASS_COLUMNS, percentile_from_buckets
from mcp_core.models import AuditEntry, MetricRollup
from mcp_core.registry import get_registry
from notifications.selectors import delivery_rates

from . import integrations
from .models import HealthCheckResult, ImprovementRun, MetricHourly, Recommendation, RefusalHourly
from .rollups import BUCKETS, COUNTS, REFUSAL_CODES, floor_hour, hourly_watermark

WINDOWS: dict[str, td] = {"1h": td(hours=1), "24h": td(hours=24), "7d": td(days=7)}
_SUMS = {name: Sum(name) for name in [*COUNTS, "total_ms", *BUCKETS]}
_SUMS["max_ms"] = Max("max_ms")

# What each figure of the pages counts; the pages print these next to the numbers.
OUTCOME_LEGEND = [
    {
        "key": "service_failures",
        "label": "Service failures",
        "meaning": "the service failed to answer, or its breaker refused the call after such failures",
        "codes": sorted(str(code) for code in codes_of(OutcomeClass.SERVICE_FAILURE)),
    },
    {
        "key": "caller_errors",
        "label": "Caller errors",
        "meaning": "the call was refused or cannot be served as asked; the service is fine",
        "codes": sorted(str(code) for code in codes_of(OutcomeClass.CALLER_ERROR)),
    },
    {
        "key": "not_configured",
        "label": "Not configured",
        "meaning": "the service has no credentials (at all or for the tenant): configuration, not a fault",
        "codes": sorted(str(code) for code in codes_of(OutcomeClass.NOT_CONFIGURED)),
    },
]


def _aggregate(
    qs, time_field: str, group: list[str], bucket: str | None, tenant_ids: frozenset[int] | None = None
) -> list[dict[str, Any]]:
    if tenant_ids is not None:
        qs = qs.filter(tenant_id__in=tenant_ids)
    fields = list(group)
    if bucket:
        qs = qs.annotate(t=Trunc(time_field, bucket, tzinfo=UTC))
        fields.append("t")
    return list(qs.values(*fields).annotate(**_SUMS).order_by())


def _merge(rows: list[dict[str, Any]], keys: list[str]) -> list[dict[str, Any]]:
    merged: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        key = tuple(row[k] for k in keys)
        into = merged.get(key)
        if into is None:
            merged[key] = {k: (v or 0) if k not in keys else v for k, v in row.items()}
            continue
        for name in (*COUNTS, "total_ms", *BUCKETS):
            into[name] += row[name] or 0
        into["max_ms"] = max(into["max_ms"], row["max_ms"] or 0)
    return list(merged.values())


def window_bounds(window: str, now: datetime) -> tuple[datetime, str]:
    """Start and bucket size of a window: 60 one-minute buckets, or whole hours for longer ones."""
    if window == "1h":
        return now.replace(second=0, microsecond=0) - td(minutes=59), "minute"
    hours = int(WINDOWS[window].total_seconds() // 3600)
    return floor_hour(now) - td(hours=hours - 1), "hour"


def metric_rows(
    since: datetime,
    *,
    group: list[str],
    bucket: str | None,
    hourly: bool,
    until: datetime | None = None,
    tenant_ids: frozenset[int] | None = None,
) -> list[dict[str, Any]]:
    """Summed rollups in [since, until), grouped. With `hourly`, complete hours come from
    MetricHourly (up to its watermark) and the rest from the minute rollups, so the answer is
    always whole; a late compaction task only makes it slower. `tenant_ids`: only the calls of
    those tenants (None: every call, of a tenant or of none)."""
    keys = group + (["t"] if bucket else [])
    end = Q(minute__lt=until) if until is not None else Q()
    if not hourly:
        return _merge(
            _aggregate(
                MetricRollup.objects.filter(end, minute__gte=since), "minute", group, bucket, tenant_ids
            ),
            keys,
        )
    watermark = hourly_watermark()
    # The hourly query runs even when its range is empty, so that a page's query count never
    # depends on the data.
    upto = watermark if watermark is not None and watermark > since else since
    if until is not None:
        upto = min(upto, until)
    rows = _aggregate(
        MetricHourly.objects.filter(hour__gte=since, hour__lt=upto), "hour", group, bucket, tenant_ids
    )
    rows += _aggregate(
        MetricRollup.objects.filter(end, minute__gte=upto), "minute", group, bucket, tenant_ids
    )
    return _merge(rows, keys)


def outcome_figures(row: dict[str, Any]) -> dict[str, Any]:
    """Calls, successes and the failures per outcome class, each also as a share of all calls
    (`*_rate` 0..1, `*_pct` 0..100): the four shares add up to the whole."""
    calls = row.get("calls") or 0
    figures: dict[str, Any] = {"calls": calls}
    failed = 0
    for column in CLASS_COLUMNS.values():
        count = row.get(column) or 0
        failed += count
        singular = column.removesuffix("s")  # service_failure_rate, caller_error_rate, not_configured_rate
        figures[column] = count
        figures[f"{singular}_rate"] = round(count / calls, 4) if calls else 0.0
        figures[f"{singular}_pct"] = round(100 * count / calls, 1) if calls else 0.0
    figures["successes"] = calls - failed
    return figures


def _latency(row: dict[str, Any]) -> dict[str, Any]:
    counts = [row[b] for b in BUCKETS]
    calls = row["calls"] or 0

    def pct(q: float) -> float | None:
        value = percentile_from_buckets(counts, q, max_ms=row["max_ms"])
        return None if value is None else round(value, 1)

    return {
        **outcome_figures(row),
        "avg_ms": round(row["total_ms"] / calls, 1) if calls else None,
        "max_ms": round(row["max_ms"], 1) if calls else None,
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
    }


# --- MCP dashboard -------------------------------------------------------------------------


def _last_failures(
    now: datetime, since: datetime, tenant_ids: frozenset[int] | None = None
) -> dict[str, dict[str, Any]]:
    """The newest service failure per service in the window (never a caller error or a
    not_configured answer), found through the rollups first so that the audit lookup reads one
    hour of one operation by index, never a day of everything. With `tenant_ids`, only the
    failures of those tenants' calls (an error message may quote another tenant's data)."""
    rows = metric_rows(
        since, group=["service", "operation"], bucket="hour", hourly=True, tenant_ids=tenant_ids
    )
    newest: dict[str, tuple[datetime, str]] = {}
    for row in rows:
        if row["service_failures"] and (row["service"] not in newest or row["t"] > newest[row["service"]][0]):
            newest[row["service"]] = (row["t"], row["operation"])
    condition = Q(pk=-1)  # matches nothing, but still runs (fixed query count)
    for service, (hour, op) in newest.items():
        condition |= Q(service=service, operation=op, created_at__gte=hour, created_at__lt=hour + td(hours=1))
    entries = AuditEntry.objects.filter(condition, error_code__in=[str(c) for c in SERVICE_FAILURE_CODES])
    if tenant_ids is not None:
        entries = entries.filter(tenant_id__in=tenant_ids)
    entries = (
        entries.annotate(rn=Window(RowNumber(), partition_by=[F("service")], order_by=F("created_at").desc()))
        .filter(rn=1)
        .values("service", "operation", "created_at", "error_code", "error_message", "request_id")
    )
    return {e["service"]: e for e in entries}


def dashboard_overview(
    now: datetime | None = None, *, tenant_ids: frozenset[int] | None = None
) -> dict[str, Any]:
    """One card per registered server and the aggregate status, from stored checks and rollups.
    With `tenant_ids`, the call figures, failures, delivery and recommendations are those
    tenants' only; the health checks and breakers are the platform's."""
    now = now or timezone.now()
    registry = get_registry()
    names = sorted(registry.servers)
    checks = {c.service: c for c in HealthCheckResult.objects.filter(service__in=names)}
    hour = {
        r["service"]: r
        for r in metric_rows(
            now - td(hours=1), group=["service"], bucket=None, hourly=False, tenant_ids=tenant_ids
        )
    }
    failures = _last_failures(now, now - td(hours=24), tenant_ids)
    breakers = integrations.breaker_states(names)
    cards = []
    stored: dict[str, HealthResult] = {}
    for name in names:
        server = registry.servers[name]
        check = checks.get(name)
        if check is not None:
            stored[name] = HealthResult(HealthStatus(check.status), check.detail)
        stats = _latency(hour[name]) if name in hour else None
        cards.append(
            {
                "name": name,
                "description": getattr(server, "description", ""),
                "configured": server.is_configured(),
                "operations": len(server.operations),
                "check": check,
                "hour": stats,
                "last_failure": failures.get(name),
                "breaker": breakers["states"].get(name) if breakers["available"] else None,
            }
        )
    return {
        "cards": cards,
        "aggregate": str(aggregate_status(stored)) if stored else None,
        "unchecked": [n for n in names if n not in checks],
        "last_checked": max((c.checked_at for c in checks.values()), default=None),
        "breakers_available": breakers["available"],
        "breakers_reason": breakers.get("reason", ""),
        "open_recommendations": visible_recommendations(tenant_ids)
        .filter(status__in=Recommendation.ACTIVE_STATUSES)
        .count(),
        "legend": OUTCOME_LEGEND,
        "delivery": delivery_rates(now=now, tenant_ids=tenant_ids),
        "generated_at": now,
    }


# --- System monitoring ---------------------------------------------------------------------


def _refusals(since: datetime, window: str, tenant_ids: frozenset[int] | None = None) -> list[dict[str, Any]]:
    codes = list(REFUSAL_CODES)
    counts: dict[tuple[int, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(codes, 0))
    audit_from = since
    if window != "1h":
        watermark = hourly_watermark()
        # The hourly query runs even when its range is empty (a fixed query count).
        audit_from = watermark if watermark is not None and watermark > since else since
        hourly_rows = RefusalHourly.objects.filter(hour__gte=since, hour__lt=audit_from)
        if tenant_ids is not None:
            hourly_rows = hourly_rows.filter(tenant_id__in=tenant_ids)
        for row in (
            hourly_rows.values("tenant_id", "service", "error_code").annotate(n=Sum("count")).order_by()
        ):
            counts[(row["tenant_id"], row["service"])][row["error_code"]] += row["n"]
    # The audit rows of the open hour (or the last hour): a range on the created_at index.
    audit_rows = AuditEntry.objects.filter(created_at__gte=audit_from, error_code__in=codes)
    if tenant_ids is not None:
        audit_rows = audit_rows.filter(tenant_id__in=tenant_ids)
    for row in audit_rows.values("tenant_id", "service", "error_code").annotate(n=Count("id")).order_by():
        counts[(row["tenant_id"] or 0, row["service"])][row["error_code"]] += row["n"]
    names = dict(Company.objects.filter(pk__in=[t for t, _ in counts if t] or [-1]).values_list("pk", "name"))
    rows = [
        {"tenant_id": t, "tenant": names.get(t, "(no tenant)" if not t else f"#{t}"), "service": s, **c}
        for (t, s), c in counts.items()
    ]
    return sorted(rows, key=lambda r: (-r["rate_limited"], -r["circuit_open"], r["tenant"]))


def _series(rows: list[dict[str, Any]], start: datetime, bucket: str, now: datetime) -> list[dict[str, Any]]:
    by_t = {row["t"]: row for row in rows}
    step = td(minutes=1) if bucket == "minute" else td(hours=1)
    minutes = 1 if bucket == "minute" else 60
    points = []
    t = start
    while t <= now:
        row = by_t.get(t)
        figures = outcome_figures(row or {})
        # The open bucket is shorter: rate it over the minutes that have passed.
        span = max(1.0, min(minutes, (now - t).total_seconds() / 60)) if bucket == "hour" else 1
        points.append(
            {
                "t": t.isoformat(),
                **figures,
                "calls_per_min": round(figures["calls"] / span, 2),
                "p95_ms": _latency(row)["p95_ms"] if row else None,
            }
        )
        t += step
    return points


def monitoring_data(
    window: str = "1h", now: datetime | None = None, *, tenant_ids: frozenset[int] | None = None
) -> dict[str, Any]:
    """Everything the monitoring page draws, for one window; the page polls this as JSON. With
    `tenant_ids`, the calls, refusals and webhook backlog are those tenants' only (the totals
    then say nothing of other tenants' volumes); breakers, queues, task failures and pools are
    the platform's and name no tenant."""
    if window not in WINDOWS:
        raise ValueError(f"window: expected one of {', '.join(WINDOWS)}")
    now = now or timezone.now()
    start, bucket = window_bounds(window, now)
    hourly = bucket == "hour"
    # One read grouped by (service, bucket) serves both the time series and the per-service
    # figures: summing a few thousand rows in Python is cheaper than a second scan.
    rows = metric_rows(start, group=["service"], bucket=bucket, hourly=hourly, tenant_ids=tenant_ids)
    series_rows = _merge([{**r, "service": None} for r in rows], ["t"])
    service_rows = _merge([{**r, "t": None} for r in rows], ["service"])
    services = sorted(
        ({"service": r["service"], **_latency(r)} for r in service_rows), key=lambda r: r["service"]
    )
    totals = outcome_figures({name: sum(s[name] for s in services) for name in COUNTS})
    minutes = max(1.0, (now - start).total_seconds() / 60)
    return {
        "window": window,
        "bucket": bucket,
        "start": start.isoformat(),
        "generated_at": now.isoformat(),
        "legend": OUTCOME_LEGEND,
        "totals": {**totals, "calls_per_min": round(totals["calls"] / minutes, 2)},
        "series": _series(series_rows, start, bucket, now),
        "services": services,
        "refusals": _refusals(start, window, tenant_ids),
        "breakers": _jsonable(integrations.breaker_transitions(start)),
        "queue": integrations.queue_depth(),
        "webhooks": integrations.webhook_backlog(tenant_ids=tenant_ids),
        "task_failures": _jsonable(integrations.task_failures(start)),
        "pools": integrations.pools(),
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


# --- Improvements --------------------------------------------------------------------------


def visible_recommendations(tenant_ids: frozenset[int] | None = None):
    """The recommendations an operator may see: all (None: every tenant), else only those about
    their tenants, i.e. naming at least one tenant and none of another. Platform findings (slow
    queries, indexes, breakers, callers' keys across tenants) are for platform operators."""
    qs = Recommendation.objects.all()
    if tenant_ids is None:
        return qs
    links = Recommendation.tenants.through.objects
    theirs = links.filter(company_id__in=tenant_ids).values("recommendation_id")
    others = links.exclude(company_id__in=tenant_ids).values("recommendation_id")
    return qs.filter(pk__in=theirs).exclude(pk__in=others)


def recommendations_list(
    status: str | None = None, limit: int = 200, *, tenant_ids: frozenset[int] | None = None
) -> list[Recommendation]:
    qs = visible_recommendations(tenant_ids)
    if status == "active":
        qs = qs.filter(status__in=Recommendation.ACTIVE_STATUSES)
    elif status:
        qs = qs.filter(status=status)
    rows = list(qs.order_by("-last_seen_at")[:limit])
    rows.sort(key=lambda r: (-Recommendation.SEVERITY_RANK.get(r.severity, 0), -r.last_seen_at.timestamp()))
    return rows


def recommendation_counts(*, tenant_ids: frozenset[int] | None = None) -> dict[str, int]:
    counts = dict.fromkeys(Recommendation.Status.values, 0)
    for row in visible_recommendations(tenant_ids).values("status").annotate(n=Count("id")).order_by():
        counts[row["status"]] = row["n"]
    return counts


def runs_list(limit: int = 20) -> list[ImprovementRun]:
    return list(ImprovementRun.objects.order_by("-started_at")[:limit])


def analytics_tenants(rights) -> list[dict[str, Any]]:
    """The tenants an operator may pick on the Analytics page (slug and name)."""
    return list(rights.tenants().values("slug", "name")[:500])


def analytics_branches(rights, tenant: str) -> list[dict[str, Any]]:
    """The branches of `tenant` for the page's branch filter: none for a tenant the operator may not see."""
    return list(
        Branch.objects.filter(company__in=rights.tenants(), company__slug=tenant)
        .order_by("name")
        .values("id", "name")[:200]
    )
