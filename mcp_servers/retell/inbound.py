"""The answer to Retell's inbound-call webhook (`call_inbound`), given synchronously.

Before connecting a call Retell asks which agent should answer and with which dynamic
variables. This is the platform's hottest path, so the answer for a dialled number is built
once and cached (one cache read on the warm path); model signals invalidate it when a phone
number, branch, service or company changes, and a TTL bounds anything signals cannot see
(queryset.update()). An unknown number gets a clear fallback, still answered with 200, so the
caller is never dropped.

Answer shape (Retell's inbound webhook response):
  {"call_inbound": {"override_agent_id": ..., "dynamic_variables": {str: str}, "metadata": {...}}}
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone

from askpro.models import Branch, PhoneNumber, Service
from mcp_core.busy_time import BusyQuery, busy_intervals, tenant_has_busy_time

CACHE_PREFIX = "webhooks:inbound:v1:"
UNKNOWN_TTL_S = 60  # an unknown number may be added any moment; don't remember it for long
_DAYS = (
    ("mon", "Mon"),
    ("tue", "Tue"),
    ("wed", "Wed"),
    ("thu", "Thu"),
    ("fri", "Fri"),
    ("sat", "Sat"),
    ("sun", "Sun"),
)


def _key(number: str) -> str:
    return CACHE_PREFIX + number


def format_business_hours(hours: Any) -> str:
    """{"mon": [["09:00", "18:00"]], ...} -> "Mon 09:00-18:00; ...; Sun closed"."""
    if not isinstance(hours, dict) or not hours:
        return ""
    parts = []
    for key, label in _DAYS:
        spans = hours.get(key) or []
        text = ", ".join(f"{s[0]}-{s[1]}" for s in spans if isinstance(s, list | tuple) and len(s) == 2)
        parts.append(f"{label} {text or 'closed'}")
    return "; ".join(parts)


def build_context(number: str) -> dict[str, Any] | None:
    """Everything the answer needs for a dialled number (None if we do not know it)."""
    phone = (
        PhoneNumber.objects.filter(number=number, is_active=True, company__is_active=True)
        .select_related("company", "branch")
        .first()
    )
    if phone is not None:
        company, branch, phone_agent = phone.company, phone.branch, phone.retell_agent_id
    else:
        branch = (
            Branch.objects.filter(phone_number=number, is_active=True, company__is_active=True)
            .select_related("company")
            .first()
        )
        if branch is None:
            return None
        company, phone_agent = branch.company, ""
    services = Service.objects.filter(company=company, is_active=True)
    if branch is not None:
        services = services.filter(Q(branch=branch) | Q(branch__isnull=True))
    agent_id = (
        phone_agent
        or (branch.retell_agent_id if branch else "")
        or company.retell_agent_id
        or settings.RETELL_DEFAULT_AGENT_ID
    )
    variables = {
        "company_name": company.name,
        "branch_name": branch.name if branch else "",
        "branch_address": ", ".join(p for p in (branch.address, branch.city) if p) if branch else "",
        "services": ", ".join(services.order_by("name").values_list("name", flat=True)),
        "business_hours": format_business_hours(branch.business_hours if branch else {}),
        "timezone": (branch.timezone if branch else "") or company.timezone,
        "known_number": "true",
    }
    return {
        "agent_id": agent_id,
        "variables": variables,
        "metadata": {"company_id": company.pk, "branch_id": branch.pk if branch else None},
        # Busy time from outside the booking system (e.g. Google Calendar) changes by the
        # minute, so it is read when a call comes in, and only for tenants that have some.
        "busy_time": tenant_has_busy_time(company.pk),
    }


def busy_variables(context: dict[str, Any], now: dt.datetime | None = None) -> dict[str, str]:
    """The rest of today's busy time (mcp_core.busy_time) in the branch's time zone:
    busy_today "10:00-11:00, 14:00-15:30" and busy_now "true"/"false"."""
    try:
        zone = ZoneInfo(context["variables"].get("timezone") or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    now = (now or timezone.now()).astimezone(zone)
    end_of_day = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), zone)
    meta = context["metadata"]
    busy = busy_intervals(BusyQuery(meta["company_id"], now, end_of_day, branch_id=meta.get("branch_id")))
    shown = [
        f"{max(s, now).astimezone(zone):%H:%M}-{min(e, end_of_day).astimezone(zone):%H:%M}" for s, e in busy
    ]
    return {
        "busy_today": ", ".join(shown),
        "busy_now": "true" if any(s <= now < e for s, e in busy) else "false",
    }


def inbound_context(number: str) -> dict[str, Any] | None:
    cached = cache.get(_key(number))
    if cached is not None:
        return cached or None  # {} is a remembered "unknown number"
    context = build_context(number)
    ttl = settings.WEBHOOK_INBOUND_CACHE_SECONDS if context else UNKNOWN_TTL_S
    cache.set(_key(number), context or {}, ttl)
    return context


def inbound_answer(payload: dict[str, Any]) -> dict[str, Any]:
    """The synchronous answer to a verified call_inbound delivery."""
    inbound = payload.get("call_inbound") if isinstance(payload.get("call_inbound"), dict) else {}
    to_number = str(inbound.get("to_number") or "").strip()
    caller = str(inbound.get("from_number") or "").strip()
    context = inbound_context(to_number) if to_number else None
    if context is None:
        answer: dict[str, Any] = {
            "dynamic_variables": {
                "company_name": "AskPro",
                "caller_number": caller,
                "known_number": "false",
            },
            "metadata": {"unknown_number": to_number},
        }
        if settings.RETELL_DEFAULT_AGENT_ID:
            answer["override_agent_id"] = settings.RETELL_DEFAULT_AGENT_ID
        return {"call_inbound": answer}
    variables = {**context["variables"], "caller_number": caller}
    if context.get("busy_time"):
        variables.update(busy_variables(context))
    answer = {"dynamic_variables": variables, "metadata": context["metadata"]}
    if context["agent_id"]:
        answer["override_agent_id"] = context["agent_id"]
    return {"call_inbound": answer}


# --- invalidation (called from model signals) ---
def inbound_cache_forget_numbers(numbers: list[str]) -> None:
    keys = [_key(n) for n in numbers if n]
    if keys:
        cache.delete_many(keys)


def inbound_cache_forget_company(company_id: int | None) -> None:
    """Drop the cached answers of every number of a company (its name, branches, services or
    hours changed)."""
    if not company_id:
        return
    numbers = list(PhoneNumber.objects.filter(company_id=company_id).values_list("number", flat=True))
    numbers += list(
        Branch.objects.filter(company_id=company_id)
        .exclude(phone_number="")
        .values_list("phone_number", flat=True)
    )
    inbound_cache_forget_numbers(numbers)
