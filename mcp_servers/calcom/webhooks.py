"""Cal.com's inbound webhooks: the X-Cal-Signature-256 verifier, the event's identity and
tenant, and the handler that keeps the Appointment in sync with booking triggers.

Cal.com gives no ordering guarantee, so each appointment remembers the `createdAt` of the
last trigger applied to it (metadata.calcom_event_at) and an older trigger is skipped: a
late BOOKING_CREATED never revives a cancelled booking.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from typing import Any

from django.db import transaction

from askpro.customers import customer_find_or_create
from askpro.models import Appointment, Branch, Company, Service
from mcp_core import signals
from mcp_core.tenancy import TenantCredentials
from mcp_core.webhooks import (
    EventIdentity,
    HandlerError,
    SignatureError,
    WebhookDelivery,
    parse_iso,
    unverified_json,
    verified_json,
    webhook,
)

CALCOM_NO_SECRET = "no-secret-provided"  # noqa: S105 - what Cal.com sends when the webhook has no secret
_CALCOM_SIGNATURE = re.compile(r"^[0-9a-fA-F]{64}$")
CALCOM_WEBHOOK_SECRET = TenantCredentials(
    service="calcom",
    tenant_field="calcom_webhook_secret",
    platform_setting="CALCOM_WEBHOOK_SECRET",
    what="Cal.com webhook secret",
)


def verify_calcom(raw: bytes, header: str | None, secret: str) -> dict[str, Any]:
    """X-Cal-Signature-256 = hex HMAC-SHA256(secret, raw body); no timestamp, no prefix.
    The literal `no-secret-provided` is refused, whatever our own secret is."""
    if not header:
        raise SignatureError("missing_signature")
    if header == CALCOM_NO_SECRET:
        raise SignatureError("no_secret_provided")
    if not secret:
        raise SignatureError("no_secret")
    if not _CALCOM_SIGNATURE.match(header.strip()):
        raise SignatureError("malformed_signature", "the signature header must be 64 hexadecimal digits")
    expected = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), header.strip().encode()):
        raise SignatureError("bad_signature")
    return verified_json(raw)


def verify(delivery: WebhookDelivery, secret: str) -> dict[str, Any]:
    """The declared verifier: the signature header over the raw body."""
    return verify_calcom(delivery.body, delivery.signature, secret)


def identify(payload: dict[str, Any], raw: bytes) -> EventIdentity:
    """Cal.com has no event id; a redelivery repeats the same body (trigger, uid, createdAt)."""
    trigger = str(payload.get("triggerEvent") or "unknown")
    inner = payload.get("payload") if isinstance(payload.get("payload"), dict) else {}
    uid = str(inner.get("uid") or inner.get("bookingId") or "")
    created = str(payload.get("createdAt") or "")
    key = f"{trigger}:{uid}:{created}" if uid and created else f"sha256:{hashlib.sha256(raw).hexdigest()}"
    return EventIdentity((f"{trigger}:{uid}" if uid else trigger), trigger, key[:200])


def company_for_event_type(event_type_id: Any) -> int | None:
    """The one company whose branch or service maps this Cal.com event type (None if 0 or 2+)."""
    if not isinstance(event_type_id, int):
        return None
    ids = set(
        Branch.objects.filter(calcom_event_type_id=event_type_id).values_list("company_id", flat=True)
    ) | set(Service.objects.filter(calcom_event_type_id=event_type_id).values_list("company_id", flat=True))
    return ids.pop() if len(ids) == 1 else None


def claimed_tenant(delivery: WebhookDelivery) -> int | None:
    """The tenant of the booking the (unverified) payload names, else of its event type."""
    payload = unverified_json(delivery.body) or {}
    inner = payload.get("payload") or {}
    if not isinstance(inner, dict):
        return None
    uid = inner.get("uid")
    if isinstance(uid, str) and uid:
        company_id = (
            Appointment.objects.filter(calcom_booking_uid=uid).values_list("company_id", flat=True).first()
        )
        if company_id:
            return company_id
    return company_for_event_type(inner.get("eventTypeId"))


S = Appointment.Status
_STATUS_FOR_TRIGGER = {
    "BOOKING_CREATED": None,  # from the payload's status
    "BOOKING_REQUESTED": S.SCHEDULED,
    "BOOKING_RESCHEDULED": None,
    "BOOKING_CANCELLED": S.CANCELLED,
    "BOOKING_REJECTED": S.CANCELLED,
    "BOOKING_PAYMENT_INITIATED": None,
    "BOOKING_PAID": None,
    "BOOKING_NO_SHOW_UPDATED": None,
    "MEETING_ENDED": S.COMPLETED,
}
# What the rest of the project is told (mcp_core.signals.appointment_changed), per trigger.
_CHANGE_FOR_TRIGGER = {
    "BOOKING_CREATED": "booked",
    "BOOKING_REQUESTED": "booked",
    "BOOKING_RESCHEDULED": "rescheduled",
    "BOOKING_CANCELLED": "cancelled",
    "BOOKING_REJECTED": "cancelled",
}
_FROM_PAYLOAD_STATUS = {
    "ACCEPTED": S.CONFIRMED,
    "PENDING": S.SCHEDULED,
    "AWAITING_HOST": S.SCHEDULED,
    "CANCELLED": S.CANCELLED,
    "REJECTED": S.CANCELLED,
}


@webhook(
    provider="calcom",
    signature_header="X-Cal-Signature-256",
    verify=verify,
    secret=CALCOM_WEBHOOK_SECRET,
    identify=identify,
    claimed_tenant=claimed_tenant,
    sandbox_signer="mcp_servers.calcom.sandbox.sign_webhook",
    signature_max_chars=256,
)
def handle(event) -> str:
    """Apply a booking trigger to the Appointment (see the module docstring)."""
    trigger = event.payload.get("triggerEvent")
    payload = event.payload.get("payload")
    if trigger not in _STATUS_FOR_TRIGGER:
        return f"ignored {trigger}"  # PING, MEETING_STARTED, RECORDING_READY, FORM_SUBMITTED, ...
    if not isinstance(payload, dict) or not payload.get("uid"):
        raise HandlerError("payload.uid: missing")
    event_at = parse_iso(event.payload.get("createdAt")) or dt.datetime.now(dt.UTC)
    with transaction.atomic():
        old_uid = (
            payload.get("rescheduleUid") or payload.get("rescheduledFromUid") or payload.get("fromReschedule")
        )
        appointment = _find(payload["uid"], old_uid if trigger == "BOOKING_RESCHEDULED" else None)
        company_id = _company_id(event, appointment, payload)
        event.tenant_id = company_id
        Company.objects.select_for_update().only("pk").get(pk=company_id)
        if appointment is None:
            appointment = Appointment(company_id=company_id, calcom_booking_uid=payload["uid"])
        elif appointment.company_id != company_id:
            raise HandlerError("the booking belongs to another tenant")
        last = parse_iso((appointment.metadata or {}).get("calcom_event_at"))
        if last is not None and event_at < last:
            return f"skipped {trigger}: older than the last applied trigger"
        _apply(appointment, trigger, payload, event_at)
        change = _CHANGE_FOR_TRIGGER.get(trigger)
        if change is not None:
            signals.appointment(appointment.pk, company_id, change, "calcom_webhook")
    return f"appointment {appointment.pk} {appointment.status}"


def _find(uid: str, old_uid: str | None) -> Appointment | None:
    found = Appointment.objects.select_for_update().filter(calcom_booking_uid=uid).first()
    if found is None and old_uid:
        found = Appointment.objects.select_for_update().filter(calcom_booking_uid=old_uid).first()
    return found


def _company_id(event, appointment: Appointment | None, payload: dict[str, Any]) -> int:
    if event.verified_by == "tenant":
        return event.tenant_id  # bound to the tenant whose secret verified it
    if appointment is not None:
        return appointment.company_id
    company_id = event.tenant_id or company_for_event_type(payload.get("eventTypeId"))
    if company_id is None:
        raise HandlerError(
            f"event type {payload.get('eventTypeId')!r} is not mapped to a tenant's branch or service"
        )
    return company_id


def _apply(appointment: Appointment, trigger: str, payload: dict[str, Any], event_at: dt.datetime) -> None:
    company_id = appointment.company_id
    metadata = dict(appointment.metadata or {})
    if trigger == "BOOKING_RESCHEDULED" and appointment.calcom_booking_uid != payload["uid"]:
        metadata.setdefault("calcom_previous_uids", []).append(appointment.calcom_booking_uid)
        appointment.calcom_booking_uid = payload["uid"]
    starts = parse_iso(payload.get("startTime"))
    ends = parse_iso(payload.get("endTime"))
    if starts and ends and ends >= starts:
        appointment.starts_at, appointment.ends_at = starts, ends
    elif appointment.pk is None:
        raise HandlerError("payload.startTime/endTime: missing or invalid")
    if isinstance(payload.get("bookingId"), int):
        appointment.calcom_booking_id = payload["bookingId"]
    event_type_id = payload.get("eventTypeId")
    if appointment.service_id is None and isinstance(event_type_id, int):
        appointment.service = Service.objects.filter(
            company_id=company_id, calcom_event_type_id=event_type_id
        ).first()
    if appointment.branch_id is None and isinstance(event_type_id, int):
        appointment.branch = Branch.objects.filter(
            company_id=company_id, calcom_event_type_id=event_type_id
        ).first()
    attendees = [a for a in payload.get("attendees") or [] if isinstance(a, dict)]
    if appointment.customer_id is None and attendees:
        first = attendees[0]
        phone = str(
            first.get("phoneNumber") or (payload.get("responses") or {}).get("attendeePhoneNumber") or ""
        )
        appointment.customer = customer_find_or_create(
            company_id,
            phone=phone if isinstance(phone, str) else "",
            email=first.get("email") or "",
            name=first.get("name") or "",
        )
    status = _STATUS_FOR_TRIGGER[trigger] or _FROM_PAYLOAD_STATUS.get(
        str(payload.get("status") or "").upper()
    )
    if trigger == "BOOKING_NO_SHOW_UPDATED" and any(a.get("noShow") for a in attendees):
        status = S.NO_SHOW
    if trigger == "BOOKING_PAID":
        metadata["paid"] = True
    if trigger == "MEETING_ENDED" and appointment.status in (S.CANCELLED, S.NO_SHOW):
        status = None
    if status is not None:
        appointment.status = status
    elif appointment.pk is None:
        appointment.status = S.SCHEDULED
    if trigger in ("BOOKING_CANCELLED", "BOOKING_REJECTED"):
        reason = payload.get("cancellationReason") or payload.get("rejectionReason")
        if reason:
            metadata["cancellation_reason"] = str(reason)[:500]
    metadata["calcom_event_at"] = event_at.isoformat()
    metadata["calcom_last_trigger"] = trigger
    appointment.metadata = metadata
    appointment.save()
