"""Cal.com booking triggers -> the Appointment kept in sync.

Cal.com gives no ordering guarantee, so each appointment remembers the `createdAt` of the
last trigger applied to it (metadata.calcom_event_at) and an older trigger is skipped: a
late BOOKING_CREATED never revives a cancelled booking.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction

from askpro.models import Appointment, Branch, Company, Service

from ..tenants import company_for_event_type
from . import HandlerError
from .common import customer_find_or_create, parse_iso

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
_FROM_PAYLOAD_STATUS = {
    "ACCEPTED": S.CONFIRMED,
    "PENDING": S.SCHEDULED,
    "AWAITING_HOST": S.SCHEDULED,
    "CANCELLED": S.CANCELLED,
    "REJECTED": S.CANCELLED,
}


def handle(event) -> str:
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
