"""The audit trail: one append-only row per orchestrated call, with secrets redacted."""

from __future__ import annotations

import logging
from datetime import timedelta as td
from typing import Any

from django.utils import timezone

from .models import AuditEntry
from .redaction import REDACTED, redact, storable_text

__all__ = ("REDACTED", "audit_fields", "audit_prune", "audit_record", "redact")

logger = logging.getLogger(__name__)


def audit_fields(
    *,
    request_id: str,
    transport: str,
    principal_name: str,
    api_key_id: int | None,
    user_id: int | None,
    tenant_id: int | None,
    service: str,
    operation: str,
    params: Any,
    error_code: str | None,
    error_message: str,
    duration_ms: float,
    idempotency_key: str | None,
    trace_id: str | None = None,
) -> dict[str, Any]:
    """The column values of one audit row: secrets redacted, every text cut to its column."""
    return {
        "created_at": timezone.now(),
        "request_id": request_id[:64],  # the column's width: an overlong id must not lose the row
        "transport": transport[:16],
        "principal": principal_name[:120],
        "api_key_id": api_key_id,
        "user_id": user_id,
        "tenant_id": tenant_id,
        "service": service[:50],
        "operation": operation[:80],
        "params": redact(params if isinstance(params, dict) else {"_": params}),
        "outcome": AuditEntry.Outcome.ERROR if error_code else AuditEntry.Outcome.SUCCESS,
        "error_code": error_code or "",
        "error_message": storable_text(error_message[:2000]),
        "duration_ms": round(duration_ms, 3),
        "idempotency_key": (idempotency_key or "")[:255],
        "trace_id": trace_id or "",
    }


def audit_record(**kwargs: Any) -> None:
    """Append one audit row (see audit_fields for the arguments)."""
    AuditEntry.objects.create(**audit_fields(**kwargs))


def audit_prune(*, days: int) -> int:
    """Delete audit rows older than `days`; returns how many went. Retention, not editing."""
    cutoff = timezone.now() - td(days=days)
    total = 0
    # In batches, so that a large backlog never holds one huge delete transaction.
    while True:
        ids = list(AuditEntry.objects.filter(created_at__lt=cutoff).values_list("id", flat=True)[:5000])
        if not ids:
            return total
        deleted, _ = AuditEntry.objects.filter(id__in=ids).delete()
        total += deleted
