"""Compaction of per-minute MetricRollup rows into MetricHourly, and refusal counts per hour.

The 24 h and 7 d views would otherwise sum up to 10,080 minute rows per key; the hourly rows
make them 60 times fewer. Compaction replaces (never increments) an hour's rows, so running it
twice, or over an hour already done, is harmless.
"""

from __future__ import annotations

from datetime import UTC, datetime
from datetime import timedelta as td

from django.db import connection, transaction
from django.utils import timezone

from mcp_core.metrics import CLASS_COLUMNS
from mcp_core.models import AuditEntry, MetricRollup

from .models import MetricHourly, RefusalHourly, RollupWatermark

BUCKETS = [f"b{i}" for i in range(14)]
# calls, then the failures per outcome class.
COUNTS = ["calls", *CLASS_COLUMNS.values()]
WATERMARK = "hourly"
# A call that ends at hh:59:59 is recorded a moment later; leave the hour alone until then.
SETTLE = td(minutes=2)
CHUNK = td(hours=24)
REFUSAL_CODES = ("rate_limited", "circuit_open")


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _hour_sql(column: str) -> str:
    if connection.vendor == "postgresql":
        return f"date_trunc('hour', {column})"
    return f"strftime('%%Y-%%m-%%d %%H:00:00', {column})"


def hourly_watermark() -> datetime | None:
    row = RollupWatermark.objects.filter(name=WATERMARK).values_list("until", flat=True).first()
    return row


def _compact_range(start: datetime, end: datetime) -> None:
    q = connection.ops.quote_name
    src, dst = q(MetricRollup._meta.db_table), q(MetricHourly._meta.db_table)
    sums = ", ".join(f"SUM({c})" for c in [*COUNTS, "total_ms"])
    bucket_sums = ", ".join(f"SUM({b})" for b in BUCKETS)
    cols = ["hour", "service", "operation", "tenant_id", *COUNTS, "total_ms", "max_ms", *BUCKETS]
    replace = ", ".join(f"{c} = excluded.{c}" for c in cols[4:])
    hour = _hour_sql("minute")
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {dst} ({', '.join(cols)}) "
            f"SELECT {hour}, service, operation, tenant_id, {sums}, MAX(max_ms), {bucket_sums} "
            f"FROM {src} WHERE minute >= %s AND minute < %s "
            f"GROUP BY {hour}, service, operation, tenant_id "
            f"ON CONFLICT (hour, service, operation, tenant_id) DO UPDATE SET {replace}",
            [start, end],
        )
        audit, refusals = q(AuditEntry._meta.db_table), q(RefusalHourly._meta.db_table)
        created_hour = _hour_sql("created_at")
        cursor.execute(
            f"INSERT INTO {refusals} (hour, service, tenant_id, error_code, count) "
            f"SELECT {created_hour}, service, COALESCE(tenant_id, 0), error_code, COUNT(*) "
            f"FROM {audit} WHERE created_at >= %s AND created_at < %s AND error_code IN (%s, %s) "
            f"GROUP BY {created_hour}, service, COALESCE(tenant_id, 0), error_code "
            f"ON CONFLICT (hour, service, tenant_id, error_code) DO UPDATE SET count = excluded.count",
            [start, end, *REFUSAL_CODES],
        )


def compact_hourly(*, now: datetime | None = None, backfill: td = td(days=8)) -> dict[str, str | int]:
    """Compact every complete hour since the watermark (at most `backfill` back) and move it on."""
    now = now or timezone.now()
    end = floor_hour(now - SETTLE)
    start = hourly_watermark() or floor_hour(now - backfill)
    start = max(start, floor_hour(now - backfill))
    chunks = 0
    while start < end:
        stop = min(start + CHUNK, end)
        with transaction.atomic():
            _compact_range(start, stop)
            RollupWatermark.objects.update_or_create(name=WATERMARK, defaults={"until": stop})
        start = stop
        chunks += 1
    return {"until": end.isoformat(), "chunks": chunks}
