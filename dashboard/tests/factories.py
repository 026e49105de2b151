"""Builders of real metric and audit data for the dashboard tests (through the recording code
the pipeline uses, or the same rows it would write for past minutes)."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db.models import F

from mcp_core.audit import audit_record
from mcp_core.metrics import bucket_index
from mcp_core.models import MetricRollup


def record_calls(
    *,
    service: str,
    operation: str,
    minute: datetime,
    durations_ms: list[float],
    service_failures: int = 0,
    caller_errors: int = 0,
    not_configured: int = 0,
    tenant_id: int | None = None,
) -> None:
    """Add calls to the rollup of one minute, exactly as metrics_record would have counted them:
    every call in `calls`, each failed one also in the count of its outcome class."""
    assert service_failures + caller_errors + not_configured <= len(durations_ms)
    minute = minute.replace(second=0, microsecond=0)
    row, _ = MetricRollup.objects.get_or_create(
        minute=minute, service=service, operation=operation, tenant_id=tenant_id or 0
    )
    buckets: dict[str, int] = {}
    for duration in durations_ms:
        name = f"b{bucket_index(duration)}"
        buckets[name] = buckets.get(name, 0) + 1
    MetricRollup.objects.filter(pk=row.pk).update(
        calls=F("calls") + len(durations_ms),
        service_failures=F("service_failures") + service_failures,
        caller_errors=F("caller_errors") + caller_errors,
        not_configured=F("not_configured") + not_configured,
        total_ms=F("total_ms") + sum(durations_ms),
        max_ms=max([row.max_ms, *durations_ms]),
        **{name: F(name) + n for name, n in buckets.items()},
    )


def audit(
    *,
    service: str,
    operation: str,
    at: datetime | None = None,
    error_code: str | None = None,
    message: str = "",
    tenant_id: int | None = None,
    duration_ms: float = 10.0,
    params: dict | None = None,
) -> None:
    from mcp_core.models import AuditEntry

    request_id = uuid.uuid4().hex
    audit_record(
        request_id=request_id,
        transport="test",
        principal_name="system",
        api_key_id=None,
        user_id=None,
        tenant_id=tenant_id,
        service=service,
        operation=operation,
        params=params or {},
        error_code=error_code,
        error_message=message,
        duration_ms=duration_ms,
        idempotency_key=None,
    )
    if at is not None:
        AuditEntry.objects.filter(request_id=request_id).update(created_at=at)
