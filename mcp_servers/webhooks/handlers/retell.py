"""Retell call_started / call_ended / call_analyzed -> the Call, its customer and branch, the
analysis, and (for a booking the agent confirmed) an appointment made through the Cal.com
server via the orchestrator.

A booking is read from `call_analysis.custom_analysis_data` (the agent's post-call analysis
fields): `appointment_booked` (true) and `appointment_start` (ISO 8601 with offset), optional
`appointment_service` (a service name), `customer_name`, `customer_email`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction

from askpro.models import Appointment, Branch, Call, Company, Service
from mcp_core.contracts import SYSTEM_PRINCIPAL
from mcp_core.pipeline import call_operation

from ..tenants import company_for_number, retell_call_number
from . import HandlerError
from .common import customer_find_or_create, ms_to_datetime, parse_iso

HANDLED = ("call_started", "call_ended", "call_analyzed")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
# A later event never moves a call back (events can arrive out of order).
_RANK = {Call.Status.REGISTERED: 0, Call.Status.ONGOING: 1, Call.Status.ENDED: 2, Call.Status.ERROR: 2}


def handle(event) -> str:
    kind = event.payload.get("event")
    call_data = event.payload.get("call")
    if kind not in HANDLED:
        return f"ignored {kind}"
    if not isinstance(call_data, dict) or not call_data.get("call_id"):
        raise HandlerError("call.call_id: missing")
    mapping = company_for_number(retell_call_number(call_data))
    if event.tenant_id is None:
        if mapping is None:
            raise HandlerError(f"no active phone number {retell_call_number(call_data)!r} maps to a tenant")
        event.tenant_id = mapping[0]
    branch_id = mapping[1] if mapping and mapping[0] == event.tenant_id else None
    call = _upsert_call(event.tenant_id, branch_id, kind, call_data)
    note = f"call {call.pk} {call.status}"
    if kind == "call_analyzed":
        note += "; " + _book_if_confirmed(call, call_data)
    return note


def _upsert_call(company_id: int, branch_id: int | None, kind: str, data: dict[str, Any]) -> Call:
    with transaction.atomic():
        # The company row lock serialises this tenant's webhook writes: two events of one new
        # caller cannot create two customers, and one call's events apply one after another.
        Company.objects.select_for_update().only("pk").get(pk=company_id)
        call = Call.objects.filter(retell_call_id=data["call_id"]).first()
        if call is not None and call.company_id != company_id:
            raise HandlerError("call_id belongs to another tenant")
        if call is None:
            call = Call(company_id=company_id, retell_call_id=data["call_id"])
        direction = data.get("direction") or call.direction or Call.Direction.INBOUND
        caller = data.get("to_number") if direction == "outbound" else data.get("from_number")
        analysis = data.get("call_analysis") if isinstance(data.get("call_analysis"), dict) else {}
        custom = analysis.get("custom_analysis_data") or {}
        if caller:  # found by phone (and filled in from the analysis), or created
            call.customer = customer_find_or_create(
                company_id,
                phone=caller,
                email=str(custom.get("customer_email") or ""),
                name=str(custom.get("customer_name") or ""),
            )
        call.branch_id = call.branch_id or branch_id
        call.direction = direction
        call.agent_id = data.get("agent_id") or call.agent_id
        call.from_number = data.get("from_number") or call.from_number
        call.to_number = data.get("to_number") or call.to_number
        status = _status_of(kind, data)
        if call.pk is None or _RANK[status] >= _RANK[Call.Status(call.status)]:
            call.status = status
        call.started_at = ms_to_datetime(data.get("start_timestamp")) or call.started_at or _now()
        call.ended_at = ms_to_datetime(data.get("end_timestamp")) or call.ended_at
        if isinstance(data.get("duration_ms"), int):
            call.duration_sec = data["duration_ms"] // 1000
        call.disconnection_reason = data.get("disconnection_reason") or call.disconnection_reason
        call.transcript = data.get("transcript") or call.transcript
        cost = (data.get("call_cost") or {}).get("combined_cost")
        if cost is not None:
            with contextlib.suppress(InvalidOperation):
                call.cost = (Decimal(str(cost)) / 100).quantize(Decimal("0.0001"))  # Retell: cents
        if analysis:
            call.analysis = analysis
            call.summary = analysis.get("call_summary") or call.summary
            call.sentiment = analysis.get("user_sentiment") or call.sentiment
            if isinstance(analysis.get("call_successful"), bool):
                call.call_successful = analysis["call_successful"]
        call.save()
    return call


def _status_of(kind: str, data: dict[str, Any]) -> Call.Status:
    if kind == "call_started":
        return Call.Status.ONGOING
    if data.get("call_status") in ("error", "not_connected"):
        return Call.Status.ERROR
    return Call.Status.ENDED


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in {"true", "yes", "1"})


def _book_if_confirmed(call: Call, data: dict[str, Any]) -> str:
    custom = ((data.get("call_analysis") or {}).get("custom_analysis_data")) or {}
    if not _truthy(custom.get("appointment_booked")):
        return "no booking"
    existing = Appointment.objects.filter(call=call).exclude(status=Appointment.Status.FAILED).first()
    if existing is not None:
        return f"appointment {existing.pk} exists"
    start = parse_iso(custom.get("appointment_start"))
    if start is None:
        raise HandlerError("custom_analysis_data.appointment_start: not an ISO datetime with offset")
    service = _service_for(call, str(custom.get("appointment_service") or ""))
    branch = Branch.objects.filter(pk=call.branch_id).first() if call.branch_id else None
    event_type_id = (service and service.calcom_event_type_id) or (branch and branch.calcom_event_type_id)
    if not event_type_id:
        raise HandlerError("no Cal.com event type for this call's service or branch")
    customer = call.customer
    phone = call.from_number if call.direction == Call.Direction.INBOUND else call.to_number
    params = {
        "event_type_id": event_type_id,
        "start": start.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "name": (customer.name if customer else "") or phone or "Caller",
        # Cal.com requires an attendee e-mail; a caller who gave none gets a non-deliverable one.
        "email": (customer.email if customer else "") or _placeholder_email(phone),
        "time_zone": (branch.timezone if branch else "") or call.company.timezone,
        "phone": phone if _E164.match(phone or "") else None,
        "length_minutes": service.duration_minutes if service else None,
        "metadata": {"retell_call_id": call.retell_call_id},
    }
    response = call_operation(
        "calcom",
        "create_booking",
        {k: v for k, v in params.items() if v not in ("", None)},
        principal=SYSTEM_PRINCIPAL,
        tenant=call.company_id,
        idempotency_key=f"retell-booking:{call.retell_call_id}",
        transport="webhook",
    )
    if not response.success:
        # Not silent: the event fails, is retried with backoff and ends in the dead letter.
        error = response.error or {}
        raise HandlerError(f"calcom.create_booking: {error.get('code')}: {error.get('message')}")
    return _link_appointment(call, service, response.data or {})


def _placeholder_email(phone: str | None) -> str:
    digits = "".join(ch for ch in phone or "" if ch.isdigit()) or "unknown"
    return f"caller-{digits}@phone.askpro.invalid"


def _service_for(call: Call, name: str) -> Service | None:
    services = Service.objects.filter(company_id=call.company_id, is_active=True)
    if name:
        match = services.filter(name__iexact=name).first() or services.filter(name__icontains=name).first()
        if match:
            return match
    return None


def _link_appointment(call: Call, service: Service | None, data: dict[str, Any]) -> str:
    """The Cal.com server recorded the Appointment; tie it to this call and its customer."""
    booking = data.get("booking") or {}
    appointment_id = data.get("appointment_id")
    with transaction.atomic():
        appointment = (
            Appointment.objects.select_for_update()
            .filter(company_id=call.company_id)
            .filter(pk=appointment_id)
            .first()
            if appointment_id
            else None
        )
        if appointment is None and booking.get("uid"):
            appointment = (
                Appointment.objects.select_for_update()
                .filter(company_id=call.company_id, calcom_booking_uid=booking["uid"])
                .first()
            )
        if appointment is None:
            raise HandlerError("calcom.create_booking succeeded but recorded no appointment of this tenant")
        appointment.call = call
        appointment.customer_id = appointment.customer_id or call.customer_id
        appointment.branch_id = appointment.branch_id or call.branch_id
        appointment.service = appointment.service or service
        appointment.save(update_fields=["call", "customer", "branch", "service", "updated_at"])
    return f"appointment {appointment.pk} booked ({booking.get('uid')})"
