"""Retell's inbound webhooks: the x-retell-signature verifier, the event's identity and
tenant, the synchronous call_inbound answer, and the handler of call_started / call_ended /
call_analyzed -> the Call, its customer and branch, the analysis, and (for a booking the agent
confirmed) an appointment made through the Cal.com server via the orchestrator.

A booking is read from `call_analysis.custom_analysis_data` (the agent's post-call analysis
fields): `appointment_booked` (true) and `appointment_start` (ISO 8601 with offset), optional
`appointment_service` (a service name), `customer_name`, `customer_email`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import re
import time
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction

from askpro.customers import customer_find_or_create
from askpro.models import Appointment, Branch, Call, Company, PhoneNumber, Service
from mcp_core.contracts import SYSTEM_PRINCIPAL
from mcp_core.pipeline import call_operation
from mcp_core.webhooks import (
    SIGNATURE_MAX_CHARS,
    EventIdentity,
    HandlerError,
    SignatureError,
    WebhookDelivery,
    check_tolerance,
    ms_to_datetime,
    parse_iso,
    unverified_json,
    verified_json,
    webhook,
)

from .inbound import inbound_answer
from .tenancy import RETELL_KEY

RETELL_TOLERANCE_MS = 300_000  # ±5 minutes, symmetric (Retell's SDK verifier)
# Timestamps: at most 13 digits (milliseconds until the year 2286), so int() is always cheap.
_RETELL_SIGNATURE = re.compile(r"^v=(\d{1,13}),d=([0-9a-f]{64})$")


def verify_retell(
    raw: bytes, header: str | None, api_key: str, *, now_ms: int | None = None
) -> dict[str, Any]:
    """x-retell-signature `v=<ms>,d=<hex>`, d = HMAC-SHA256(api_key, body + str(ms)), ±5 min."""
    if not header:
        raise SignatureError("missing_signature")
    if not api_key:
        raise SignatureError("no_secret")
    match = _RETELL_SIGNATURE.match(header.strip()) if len(header) <= SIGNATURE_MAX_CHARS else None
    if match is None:
        raise SignatureError(
            "malformed_signature", "the signature header must be v=<unix ms>,d=<64 hex digits>"
        )
    stamp, digest = match.group(1), match.group(2)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    check_tolerance(int(stamp) / 1000, RETELL_TOLERANCE_MS / 1000, now_ms / 1000)
    expected = hmac.new(api_key.encode(), raw + stamp.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), digest.encode()):
        raise SignatureError("bad_signature")
    return verified_json(raw)


def verify(delivery: WebhookDelivery, secret: str) -> dict[str, Any]:
    """The declared verifier: the signature header over the raw body."""
    return verify_retell(delivery.body, delivery.signature, secret)


def identify(payload: dict[str, Any], raw: bytes) -> EventIdentity:
    """Retell retries the same event of the same call; one row per (event, call)."""
    event = str(payload.get("event") or "unknown")
    call = payload.get("call") if isinstance(payload.get("call"), dict) else {}
    call_id = str(call.get("call_id") or "")
    key = f"{event}:{call_id}" if call_id else f"sha256:{hashlib.sha256(raw).hexdigest()}"
    return EventIdentity(call_id, event, key)


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


def claimed_tenant(delivery: WebhookDelivery) -> int | None:
    """The tenant owning our side of the (unverified) call's numbers."""
    payload = unverified_json(delivery.body) or {}
    call = payload.get("call") or payload.get("call_inbound") or {}
    found = company_for_number(retell_call_number(call)) if isinstance(call, dict) else None
    return found[0] if found else None


HANDLED = ("call_started", "call_ended", "call_analyzed")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
# A later event never moves a call back (events can arrive out of order).
_RANK = {Call.Status.REGISTERED: 0, Call.Status.ONGOING: 1, Call.Status.ENDED: 2, Call.Status.ERROR: 2}


def answer(payload: dict[str, Any]) -> dict[str, Any] | None:
    """call_inbound is answered at once (Retell waits for it before connecting the caller);
    every other event is stored and processed from the queue."""
    return inbound_answer(payload) if payload.get("event") == "call_inbound" else None


@webhook(
    provider="retell",
    signature_header="X-Retell-Signature",
    verify=verify,
    secret=RETELL_KEY,
    identify=identify,
    claimed_tenant=claimed_tenant,
    answer=answer,
    sandbox_signer="mcp_servers.retell.sandbox.sign_webhook",
    signature_max_chars=256,
)
def handle(event) -> str:
    """Apply a call event to the Call, and book what the agent confirmed (module docstring)."""
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
