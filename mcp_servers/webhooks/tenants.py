"""Which tenant a delivery belongs to, and that tenant's own webhook secret.

Tenant resolution reads the payload, which may still be unverified when we look: it is only
ever used to pick *which* secret to verify with, never to skip verification. A delivery that a
tenant's own secret verified is bound to that tenant and to nothing else.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from askpro.models import Appointment, Branch, Company, PhoneNumber, Service

_SECRET_FIELDS = {
    "stripe": "stripe_webhook_secret",
    "calcom": "calcom_webhook_secret",
    "retell": "retell_api_key",
}
# Decrypted tenant secrets live in this process's memory only (never in Redis), for a minute,
# so that the inbound-call path of a tenant with its own Retell key needs no query.
_SECRET_TTL_S = 60.0
_secret_cache: dict[tuple[int, str], tuple[float, str]] = {}
_secret_lock = threading.Lock()


def tenant_secret(company_id: int, provider: str) -> str:
    """The tenant's own secret for the provider ("" when it has none)."""
    key = (company_id, provider)
    now = time.monotonic()
    with _secret_lock:
        hit = _secret_cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    company = Company.objects.filter(pk=company_id, is_active=True).only(_SECRET_FIELDS[provider]).first()
    secret = getattr(company, _SECRET_FIELDS[provider], "") if company else ""
    with _secret_lock:
        _secret_cache[key] = (now + _SECRET_TTL_S, secret or "")
    return secret or ""


def forget_tenant_secrets() -> None:
    with _secret_lock:
        _secret_cache.clear()


def company_for_number(number: str | None) -> tuple[int, int | None] | None:
    """(company_id, branch_id) of an active dialled number, else None."""
    if not number:
        return None
    row = (
        PhoneNumber.objects.filter(number=number.strip(), is_active=True, company__is_active=True)
        .values_list("company_id", "branch_id")
        .first()
    )
    if row:
        return row[0], row[1]
    branch = (
        Branch.objects.filter(phone_number=number.strip(), is_active=True, company__is_active=True)
        .values_list("company_id", "pk")
        .first()
    )
    return (branch[0], branch[1]) if branch else None


def retell_call_number(call: dict[str, Any]) -> str | None:
    """Our side of a Retell call: the dialled number for inbound, the caller id for outbound."""
    if call.get("direction") == "outbound":
        return call.get("from_number")
    return call.get("to_number")


def company_for_event_type(event_type_id: Any) -> int | None:
    """The one company whose branch or service maps this Cal.com event type (None if 0 or 2+)."""
    if not isinstance(event_type_id, int):
        return None
    ids = set(
        Branch.objects.filter(calcom_event_type_id=event_type_id).values_list("company_id", flat=True)
    ) | set(Service.objects.filter(calcom_event_type_id=event_type_id).values_list("company_id", flat=True))
    return ids.pop() if len(ids) == 1 else None


def claimed_tenant_id(provider: str, payload: dict[str, Any]) -> int | None:
    """The tenant the payload points at (verified or not: see the module docstring)."""
    if provider == "retell":
        call = payload.get("call") or payload.get("call_inbound") or {}
        found = company_for_number(retell_call_number(call)) if isinstance(call, dict) else None
        return found[0] if found else None
    if provider == "calcom":
        inner = payload.get("payload") or {}
        if not isinstance(inner, dict):
            return None
        uid = inner.get("uid")
        if isinstance(uid, str) and uid:
            company_id = (
                Appointment.objects.filter(calcom_booking_uid=uid)
                .values_list("company_id", flat=True)
                .first()
            )
            if company_id:
                return company_id
        return company_for_event_type(inner.get("eventTypeId"))
    if provider == "stripe":
        data = payload.get("data") or {}
        obj = data.get("object") if isinstance(data, dict) else None
        if not isinstance(obj, dict):
            return None
        customer = obj.get("id") if obj.get("object") == "customer" else obj.get("customer")
        if isinstance(customer, str) and customer:
            return Company.objects.filter(stripe_customer_id=customer).values_list("pk", flat=True).first()
    return None
