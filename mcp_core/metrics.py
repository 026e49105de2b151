"""Per-minute metric rollups fed by every call (with its audit row: one call, or a batch of
calls from mcp_core.recorder), and percentile estimates read from them.

A call's error code decides which count a failure adds to (contracts.outcome_class):
caller_errors, not_configured or service_failures; `calls` counts them all."""

from __future__ import annotations

import bisect
import functools
from collections.abc import Iterable
from datetime import datetime

import msgspec
from django.db import connection, transaction
from django.utils import timezone

from .contracts import ErrorCode, OutcomeClass, outcome_class
from .models import LATENCY_BUCKETS_MS, MetricRollup

_BUCKET_COLUMNS = [f"b{i}" for i in range(len(LATENCY_BUCKETS_MS) + 1)]
# The rollup column each failing outcome class adds to (a success adds to `calls` only).
CLASS_COLUMNS = {
    OutcomeClass.CALLER_ERROR: "caller_errors",
    OutcomeClass.NOT_CONFIGURED: "not_configured",
    OutcomeClass.SERVICE_FAILURE: "service_failures",
}
_COUNT_COLUMNS = ["calls", *CLASS_COLUMNS.values()]


def class_counts(error_code: ErrorCode | str | None) -> list[int]:
    """calls, caller_errors, not_configured, service_failures added by one call."""
    kind = outcome_class(error_code)
    return [1, *(int(kind is found) for found in CLASS_COLUMNS)]


def _upsert_sql() -> str:
    table = connection.ops.quote_name(MetricRollup._meta.db_table)
    columns = [
        "minute",
        "service",
        "operation",
        "tenant_id",
        *_COUNT_COLUMNS,
        "total_ms",
        "max_ms",
        *_BUCKET_COLUMNS,
    ]
    placeholders = ", ".join(["%s"] * len(columns))
    increments = ", ".join(
        f"{col} = {table}.{col} + excluded.{col}" for col in [*_COUNT_COLUMNS, "total_ms", *_BUCKET_COLUMNS]
    )
    # ON CONFLICT ... DO UPDATE is understood by PostgreSQL and SQLite (>= 3.24) alike.
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders}) "
        f"ON CONFLICT (minute, service, operation, tenant_id) DO UPDATE SET {increments}, "
        f"max_ms = CASE WHEN excluded.max_ms > {table}.max_ms THEN excluded.max_ms ELSE {table}.max_ms END"
    )


def bucket_index(duration_ms: float) -> int:
    return bisect.bisect_left(LATENCY_BUCKETS_MS, duration_ms)


def _metric_values(
    *,
    service: str,
    operation: str,
    tenant_id: int | None,
    duration_ms: float,
    error_code: ErrorCode | str | None,
    at: datetime | None = None,
) -> list:
    minute = (at or timezone.now()).replace(second=0, microsecond=0)
    buckets = [0] * len(_BUCKET_COLUMNS)
    buckets[bucket_index(duration_ms)] = 1
    return [
        minute,
        service,
        operation,
        tenant_id or 0,
        *class_counts(error_code),
        duration_ms,
        duration_ms,
        *buckets,
    ]


def metrics_record(
    *,
    service: str,
    operation: str,
    tenant_id: int | None,
    duration_ms: float,
    error_code: ErrorCode | str | None,
    at: datetime | None = None,
) -> None:
    """Add one call to its minute's rollup; `error_code` None for a success."""
    values = _metric_values(
        service=service,
        operation=operation,
        tenant_id=tenant_id,
        duration_ms=duration_ms,
        error_code=error_code,
        at=at,
    )
    with connection.cursor() as cursor:
        cursor.execute(_upsert_sql(), values)


def record_call(*, audit: dict, metric: dict | None) -> None:
    """The audit row and the rollup increment of one call.

    On PostgreSQL both go in one statement (a data-modifying CTE): one round trip instead
    of two on the hottest path. Elsewhere, two statements.
    """
    from .models import AuditEntry

    if metric is None or connection.vendor != "postgresql":
        AuditEntry.objects.create(**audit)
        if metric is not None:
            metrics_record(**metric, at=audit["created_at"])
        return
    fields = [(AuditEntry._meta.get_field(name), value) for name, value in audit.items()]
    columns = ", ".join(connection.ops.quote_name(f.column) for f, _ in fields)
    audit_values = [f.get_db_prep_save(value, connection) for f, value in fields]
    table = connection.ops.quote_name(AuditEntry._meta.db_table)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = f"WITH audit_row AS (INSERT INTO {table} ({columns}) VALUES ({placeholders})) {_upsert_sql()}"
    with connection.cursor() as cursor:
        cursor.execute(sql, [*audit_values, *_metric_values(**metric, at=audit["created_at"])])


# The audit columns with the PostgreSQL types the batch statement reads them as.
_AUDIT_BATCH_COLUMNS = {
    "created_at": "timestamptz",
    "request_id": "text",
    "transport": "text",
    "principal": "text",
    "api_key_id": "bigint",
    "user_id": "bigint",
    "tenant_id": "bigint",
    "service": "text",
    "operation": "text",
    "params": "jsonb",
    "outcome": "text",
    "error_code": "text",
    "error_message": "text",
    "duration_ms": "float8",
    "idempotency_key": "text",
    "trace_id": "text",
}
# Per row, what the rollup counts (m_counted false: a refused made-up operation, audit only).
_METRIC_BATCH_COLUMNS = {
    "m_counted": "boolean",
    "m_minute": "timestamptz",
    "m_service": "text",
    "m_operation": "text",
    "m_tenant": "bigint",
    "m_caller": "int",
    "m_nc": "int",
    "m_failure": "int",
    "m_ms": "float8",
    "m_bucket": "int",
}


@functools.cache
def _batch_sql() -> str:
    """One statement for a whole batch: the audit rows and their rollup increments, aggregated
    per (minute, service, operation, tenant) in the database. The batch arrives as one JSON
    parameter (msgspec writes datetimes as RFC 3339): a batch of any size is one round trip and
    one commit."""
    from .models import AuditEntry

    quote = connection.ops.quote_name
    audit_table, rollup_table = quote(AuditEntry._meta.db_table), quote(MetricRollup._meta.db_table)
    record_type = ", ".join(
        f"{name} {kind}" for name, kind in {**_AUDIT_BATCH_COLUMNS, **_METRIC_BATCH_COLUMNS}.items()
    )
    audit_columns = ", ".join(quote(AuditEntry._meta.get_field(name).column) for name in _AUDIT_BATCH_COLUMNS)
    buckets = ", ".join(f"count(*) FILTER (WHERE m_bucket = {i})" for i in range(len(_BUCKET_COLUMNS)))
    increments = ", ".join(
        f"{col} = {rollup_table}.{col} + excluded.{col}"
        for col in [*_COUNT_COLUMNS, "total_ms", *_BUCKET_COLUMNS]
    )
    return (
        f"WITH batch AS (SELECT * FROM json_to_recordset(%s::json) AS r({record_type})), "
        f"audit_rows AS (INSERT INTO {audit_table} ({audit_columns}) "
        f"SELECT {', '.join(_AUDIT_BATCH_COLUMNS)} FROM batch) "
        f"INSERT INTO {rollup_table} (minute, service, operation, tenant_id, {', '.join(_COUNT_COLUMNS)}, "
        f"total_ms, max_ms, {', '.join(_BUCKET_COLUMNS)}) "
        f"SELECT m_minute, m_service, m_operation, m_tenant, count(*), sum(m_caller), sum(m_nc), sum(m_failure), "
        f"sum(m_ms), max(m_ms), {buckets} "
        f"FROM batch WHERE m_counted GROUP BY m_minute, m_service, m_operation, m_tenant "
        f"ON CONFLICT (minute, service, operation, tenant_id) DO UPDATE SET {increments}, "
        f"max_ms = GREATEST({rollup_table}.max_ms, excluded.max_ms)"
    )


def _batch_row(audit: dict, metric: dict | None) -> dict:
    if metric is None:
        return {**audit, "m_counted": False}
    _, caller, not_configured, failure = class_counts(metric["error_code"])
    return {
        **audit,
        "m_counted": True,
        "m_minute": audit["created_at"].replace(second=0, microsecond=0),
        "m_service": metric["service"],
        "m_operation": metric["operation"],
        "m_tenant": metric["tenant_id"] or 0,
        "m_caller": caller,
        "m_nc": not_configured,
        "m_failure": failure,
        "m_ms": metric["duration_ms"],
        "m_bucket": bucket_index(metric["duration_ms"]),
    }


def record_calls(batch: list[tuple[dict, dict | None]]) -> None:
    """The audit rows and rollup increments of many calls, all or nothing.

    PostgreSQL: one statement (see _batch_sql). Elsewhere: a multi-row INSERT and one upsert
    per (minute, service, operation, tenant), in one transaction.
    """
    from .models import AuditEntry

    if connection.vendor == "postgresql":
        payload = msgspec.json.encode([_batch_row(audit, metric) for audit, metric in batch]).decode()
        with connection.cursor() as cursor:
            cursor.execute(_batch_sql(), [payload])
        return
    with transaction.atomic():
        AuditEntry.objects.bulk_create([AuditEntry(**audit) for audit, _ in batch])
        for audit, metric in batch:
            if metric is not None:
                metrics_record(**metric, at=audit["created_at"])


def percentile_from_buckets(counts: Iterable[int], q: float, *, max_ms: float | None = None) -> float | None:
    """Estimate the q-quantile (0..1) by linear interpolation inside the histogram bucket."""
    counts = list(counts)
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    cumulative = 0
    for index, count in enumerate(counts):
        if count and cumulative + count >= rank:
            lower = 0.0 if index == 0 else float(LATENCY_BUCKETS_MS[index - 1])
            if index >= len(LATENCY_BUCKETS_MS):
                return max_ms if max_ms is not None else lower
            upper = float(LATENCY_BUCKETS_MS[index])
            if max_ms is not None:
                upper = min(upper, max_ms)
            fraction = (rank - cumulative) / count
            return lower + (upper - lower) * fraction
        cumulative += count
    return max_ms
