"""The audit trail: one append-only row per orchestrated call, with secrets redacted."""

from __future__ import annotations

import logging
import re
from datetime import timedelta as td
from typing import Any

from django.utils import timezone

from .models import AuditEntry

logger = logging.getLogger(__name__)

REDACTED = "[redacted]"
_SECRET_NAME = re.compile(
    r"(pass(word)?|secret|token|api[_-]?key|authorization|credential|private|signature|card|cvc|iban)",
    re.IGNORECASE,
)
# Values that are secrets whatever their key is called: our keys, Stripe keys, webhook secrets.
_SECRET_VALUE = re.compile(
    r"^(askp_[0-9a-f]{10}_|sk_(live|test)_|rk_(live|test)_|whsec_|key_[A-Za-z0-9]{16,})"
)
MAX_PARAM_CHARS = 2000


def redact(value: Any, *, depth: int = 0) -> Any:
    """A copy of params with secret-looking keys and values replaced; long strings cut."""
    if depth > 8:
        return "…"
    if isinstance(value, dict):
        return {
            str(k): REDACTED if _SECRET_NAME.search(str(k)) else redact(v, depth=depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v, depth=depth + 1) for v in value[:100]]
    if isinstance(value, str):
        if _SECRET_VALUE.match(value):
            return REDACTED
        return value if len(value) <= MAX_PARAM_CHARS else value[:MAX_PARAM_CHARS] + "…"
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)[:MAX_PARAM_CHARS]


def audit_record(
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
) -> None:
    AuditEntry.objects.create(
        request_id=request_id,
        transport=transport,
        principal=principal_name[:120],
        api_key_id=api_key_id,
        user_id=user_id,
        tenant_id=tenant_id,
        service=service[:50],
        operation=operation[:80],
        params=redact(params if isinstance(params, dict) else {"_": params}),
        outcome=AuditEntry.Outcome.ERROR if error_code else AuditEntry.Outcome.SUCCESS,
        error_code=error_code or "",
        error_message=error_message[:2000],
        duration_ms=round(duration_ms, 3),
        idempotency_key=(idempotency_key or "")[:255],
    )


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
