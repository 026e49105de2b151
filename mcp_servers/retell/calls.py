"""Turning Retell call objects into local Call rows (import) and back into plain summaries.

Units: Retell timestamps and durations are milliseconds since the epoch; `call_cost.
combined_cost` is in cents (the local `Call.cost` is in currency units, so / 100).
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, transaction

from askpro.models import Call, Customer

from .tenancy import TenantScope

FINAL_STATUSES = frozenset({"ended", "error", "not_connected"})
_STATUS = {
    "registered": Call.Status.REGISTERED,
    "ongoing": Call.Status.ONGOING,
    "ended": Call.Status.ENDED,
    "error": Call.Status.ERROR,
    "not_connected": Call.Status.ERROR,
}


def ms_to_datetime(value: Any) -> dt.datetime | None:
    if value in (None, ""):
        return None
    return dt.datetime.fromtimestamp(int(value) / 1000, tz=dt.UTC)


def cents_to_amount(value: Any) -> Decimal:
    if value in (None, ""):
        return Decimal("0")
    try:
        return (Decimal(str(value)) / 100).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
    except InvalidOperation:
        return Decimal("0")


def caller_number(call: dict[str, Any]) -> str:
    """The customer's side of the call: the caller inbound, the callee outbound."""
    return (call.get("to_number") if call.get("direction") == "outbound" else call.get("from_number")) or ""


class ImportSkipped(Exception):
    """The call cannot become a local row yet (no start time, not finished)."""


def find_or_create_customer(scope: TenantScope, phone: str) -> Customer | None:
    if not phone:
        return None
    customer = Customer.objects.filter(company=scope.company, phone=phone).order_by("pk").first()
    if customer is None:
        customer = Customer.objects.create(company=scope.company, name=f"Caller {phone}", phone=phone)
    return customer


def import_call(scope: TenantScope, call: dict[str, Any]) -> Call | None:
    """Create the local row for a finished call; None when the call id is already known.

    Runs in its own savepoint: a concurrent import that inserts the same call id first
    makes this one a skip (the unique retell_call_id decides), never a half-written row.
    """
    if call.get("call_status") not in FINAL_STATUSES:
        raise ImportSkipped(f"call is {call.get('call_status')!r}, not finished")
    started = ms_to_datetime(call.get("start_timestamp")) or ms_to_datetime(call.get("end_timestamp"))
    if started is None:
        raise ImportSkipped("call has neither start_timestamp nor end_timestamp")
    analysis = call.get("call_analysis") or {}
    duration_ms = call.get("duration_ms")
    if duration_ms is None and call.get("end_timestamp") and call.get("start_timestamp"):
        duration_ms = int(call["end_timestamp"]) - int(call["start_timestamp"])
    try:
        with transaction.atomic():
            if Call.objects.filter(retell_call_id=call["call_id"]).exists():
                return None
            return Call.objects.create(
                company=scope.company,
                branch=scope.branch_for_call(call),
                customer=find_or_create_customer(scope, caller_number(call)),
                retell_call_id=call["call_id"],
                agent_id=call.get("agent_id") or "",
                from_number=call.get("from_number") or "",
                to_number=call.get("to_number") or "",
                direction=Call.Direction.OUTBOUND
                if call.get("direction") == "outbound"
                else Call.Direction.INBOUND,
                status=_STATUS.get(call.get("call_status"), Call.Status.ERROR),
                disconnection_reason=(call.get("disconnection_reason") or "")[:64],
                call_successful=analysis.get("call_successful"),
                started_at=started,
                ended_at=ms_to_datetime(call.get("end_timestamp")),
                duration_sec=max(0, round((duration_ms or 0) / 1000)),
                cost=cents_to_amount((call.get("call_cost") or {}).get("combined_cost")),
                transcript=call.get("transcript") or "",
                summary=analysis.get("call_summary") or "",
                sentiment=(analysis.get("user_sentiment") or "")[:20],
                # Call has no recording column: the URL travels with Retell's analysis.
                analysis={**analysis, "recording_url": call.get("recording_url")}
                if call.get("recording_url")
                else analysis,
            )
    except IntegrityError:
        return None
