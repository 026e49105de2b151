"""Bookings of one tenant: the listing filtered to what the tenant owns, booking a slot
exactly once per request (BookingRequest rows make a retry replay or recover the first
outcome), and the local Appointment that follows every change."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from django.db import IntegrityError, transaction
from django.utils import timezone

from askpro.models import Appointment, Branch, Company, Customer, Service
from mcp_core import signals
from mcp_core.contracts import ErrorCode, MCPError, OperationContext

from .client import MAX_TAKE, utc_iso
from .models import BookingRequest
from .schemas import (
    BookingInfo,
    BookingsResult,
    CreateBookingParams,
    CreateBookingResult,
    GetBookingsParams,
    Pagination,
    booking_info,
)
from .tenancy import METADATA_TENANT, Access

STALE_PENDING = dt.timedelta(seconds=60)
METADATA_REQUEST = "askpro_request"


# --- listing ---
def list_bookings(access: Access, ctx: OperationContext, params: GetBookingsParams) -> BookingsResult:
    """One page of Cal.com's bookings, narrowed to the tenant's event types on the shared
    account and then to the bookings the tenant owns."""
    query: dict[str, Any] = {"take": params.take, "skip": params.skip, "sortStart": "asc"}
    if params.status:
        query["status"] = ",".join(params.status)
    if params.attendee_email:
        query["attendeeEmail"] = params.attendee_email
    if params.after_start:
        query["afterStart"] = utc_iso(params.after_start)
    if params.before_end:
        query["beforeEnd"] = utc_iso(params.before_end)
    event_type_ids = {params.event_type_id} if params.event_type_id else None
    if not access.own_account:
        mapped = access.mapped_event_type_ids()
        event_type_ids = mapped if event_type_ids is None else event_type_ids & mapped
    if event_type_ids is not None:
        if not event_type_ids:
            return BookingsResult(
                bookings=[],
                pagination=Pagination(
                    total_items=0, returned_items=0, take=params.take, skip=params.skip, has_next_page=False
                ),
                hidden_other_tenants=0,
            )
        query["eventTypeIds"] = ",".join(str(i) for i in sorted(event_type_ids))
    raw_items, pagination = access.client.bookings(query, ctx)
    local_uids = None
    if not access.own_account:
        uids = [item.get("uid") for item in raw_items]
        local_uids = set(
            Appointment.objects.filter(company=access.company, calcom_booking_uid__in=uids).values_list(
                "calcom_booking_uid", flat=True
            )
        )
    owned = [item for item in raw_items if access.owns(item, local_uids)]
    return BookingsResult(
        bookings=[booking_info(item) for item in owned],
        pagination=Pagination(
            total_items=int(pagination.get("totalItems", len(raw_items))),
            returned_items=len(owned),
            take=params.take,
            skip=params.skip,
            has_next_page=bool(pagination.get("hasNextPage", False)),
        ),
        hidden_other_tenants=len(raw_items) - len(owned),
    )


# --- booking once ---
def create_booking(
    access: Access, ctx: OperationContext, params: CreateBookingParams, tz: ZoneInfo
) -> CreateBookingResult:
    """Book the slot unless this request (its idempotency key, else its params) booked it
    before; record the local Appointment with the outcome in one transaction."""
    company = access.company
    fingerprint = _fingerprint(params)
    key = ctx.request.idempotency_key or f"auto-{fingerprint}"
    if len(key) > 255:
        raise MCPError(
            ErrorCode.VALIDATION_ERROR,
            "idempotency_key: at most 255 characters",
            details={"field": "idempotency_key"},
        )
    claim, state = _claim(company, key, fingerprint, ctx)
    if state == "replay":
        return CreateBookingResult(
            booking=msgspec.convert(claim.result["booking"], BookingInfo),
            appointment_id=claim.result.get("appointment_id"),
            replayed=True,
            idempotency_key=key,
        )
    request_tag = hashlib.sha256(key.encode()).hexdigest()[:32]
    raw = None
    if state == "recover":
        raw = _find_earlier_booking(access, ctx, params, request_tag)
    if raw is None:
        raw = _book(access, ctx, params, tz.key, request_tag, claim)
    info = booking_info(raw)
    with transaction.atomic():
        appointment = _record_appointment(company, info, params)
        signals.appointment(appointment.pk, company.pk, "booked", "calcom_operation")
        result = {"booking": msgspec.to_builtins(info), "appointment_id": appointment.pk}
        BookingRequest.objects.filter(pk=claim.pk).update(
            status=BookingRequest.Status.SUCCEEDED,
            booking_uid=info.uid,
            booking_id=info.id,
            result=result,
            error_code="",
            error_message="",
            updated_at=timezone.now(),
        )
    return CreateBookingResult(
        booking=info, appointment_id=appointment.pk, replayed=False, idempotency_key=key
    )


def _book(
    access: Access,
    ctx: OperationContext,
    params: CreateBookingParams,
    time_zone: str,
    request_tag: str,
    claim: BookingRequest,
) -> dict[str, Any]:
    """POST /v2/bookings; a failure is written on the claim (uncertain when Cal.com may have booked)."""
    attendee: dict[str, Any] = {"name": params.name, "email": params.email, "timeZone": time_zone}
    if params.phone:
        attendee["phoneNumber"] = params.phone
    body: dict[str, Any] = {
        "start": utc_iso(params.start),
        "eventTypeId": params.event_type_id,
        "attendee": attendee,
        # Ours last, so a caller cannot forge another tenant's ownership tag.
        "metadata": {
            **(params.metadata or {}),
            METADATA_TENANT: str(access.company.pk),
            METADATA_REQUEST: request_tag,
        },
    }
    if params.notes:
        body["bookingFieldsResponses"] = {"notes": params.notes}
    if params.length_minutes:
        body["lengthInMinutes"] = params.length_minutes
    try:
        return access.client.create_booking(body, ctx)
    except MCPError as exc:
        # No answer (timeout, 5xx): Cal.com may have booked — a retry looks first.
        uncertain = exc.code in (ErrorCode.TIMEOUT, ErrorCode.UPSTREAM_ERROR) and (
            exc.details.get("upstream_status") in (None, 500, 502, 503, 504)
        )
        status = BookingRequest.Status.UNCERTAIN if uncertain else BookingRequest.Status.FAILED
        BookingRequest.objects.filter(pk=claim.pk).update(
            status=status,
            error_code=str(exc.code),
            error_message=exc.message[:2000],
            updated_at=timezone.now(),
        )
        raise


def _fingerprint(params: CreateBookingParams) -> str:
    normalized = msgspec.structs.replace(params, start=params.start.astimezone(dt.UTC))
    return hashlib.sha256(msgspec.json.encode(normalized)).hexdigest()


def _claim(company: Company, key: str, fingerprint: str, ctx: OperationContext) -> tuple[BookingRequest, str]:
    """Own the request row for (company, key), or return the stored outcome.

    Returns (row, state): "new" (book it), "retry" (Cal.com refused earlier: book it),
    "recover" (an earlier try got no answer: look for its booking first), "replay" (done).
    A duplicate arriving while another caller books waits for that outcome.
    """
    while True:
        try:
            with transaction.atomic():
                return BookingRequest.objects.create(
                    company=company, idempotency_key=key, fingerprint=fingerprint
                ), "new"
        except IntegrityError:
            row = BookingRequest.objects.filter(company=company, idempotency_key=key).first()
            if row is None:
                continue  # deleted in between: try again
        if row.fingerprint != fingerprint:
            raise MCPError(
                ErrorCode.CONFLICT,
                "idempotency_key: already used for a booking request with other parameters",
                details={"field": "idempotency_key"},
            )
        if row.status == BookingRequest.Status.SUCCEEDED:
            return row, "replay"
        stale = (
            row.status == BookingRequest.Status.PENDING and row.updated_at < timezone.now() - STALE_PENDING
        )
        if row.status != BookingRequest.Status.PENDING or stale:
            # Take the row over atomically: exactly one of several retries wins.
            taken = BookingRequest.objects.filter(
                pk=row.pk, status=row.status, updated_at=row.updated_at
            ).update(status=BookingRequest.Status.PENDING, updated_at=timezone.now())
            if taken:
                return row, "retry" if row.status == BookingRequest.Status.FAILED else "recover"
            continue
        if ctx.remaining() < 1.0:
            raise MCPError(
                ErrorCode.CONFLICT,
                "idempotency_key: the same booking request is still in progress; retry shortly",
                details={"field": "idempotency_key"},
                retry_after=1.0,
            )
        time.sleep(0.05)


def _find_earlier_booking(
    access: Access, ctx: OperationContext, params: CreateBookingParams, request_tag: str
) -> dict[str, Any] | None:
    """The booking an unanswered earlier attempt may have made (found by our metadata tag)."""
    start = params.start.astimezone(dt.UTC)
    items, _ = access.client.bookings(
        {
            "attendeeEmail": params.email,
            "eventTypeId": params.event_type_id,
            "afterStart": utc_iso(start - dt.timedelta(minutes=1)),
            "take": MAX_TAKE,
        },
        ctx,
    )
    for item in items:
        if (item.get("metadata") or {}).get(METADATA_REQUEST) == request_tag and item.get(
            "status"
        ) != "cancelled":
            return item
    return None


# --- the local Appointment ---
def _record_appointment(company: Company, info: BookingInfo, params: CreateBookingParams) -> Appointment:
    branch = Branch.objects.filter(company=company, calcom_event_type_id=params.event_type_id).first()
    service = Service.objects.filter(company=company, calcom_event_type_id=params.event_type_id).first()
    customer = Customer.objects.filter(company=company, email__iexact=params.email).first()
    appointment, _ = Appointment.objects.update_or_create(
        calcom_booking_uid=info.uid,
        defaults={
            "company": company,
            "branch": branch,
            "service": service,
            "customer": customer,
            "starts_at": info.start,
            "ends_at": info.end,
            "status": Appointment.Status.SCHEDULED,
            "calcom_booking_id": info.id,
            "notes": params.notes or "",
            "metadata": {"source": "mcp:calcom", "attendee_email": params.email},
        },
    )
    return appointment


def move_appointment(company: Company, previous_uid: str, info: BookingInfo) -> None:
    """A rescheduled booking has a new uid and time; the local Appointment follows it."""
    with transaction.atomic():
        ids = list(
            Appointment.objects.filter(company=company, calcom_booking_uid=previous_uid).values_list(
                "pk", flat=True
            )
        )
        Appointment.objects.filter(pk__in=ids).update(
            calcom_booking_uid=info.uid,
            calcom_booking_id=info.id,
            starts_at=info.start,
            ends_at=info.end,
            status=Appointment.Status.SCHEDULED,
        )
        for pk in ids:
            signals.appointment(pk, company.pk, "rescheduled", "calcom_operation")


def cancel_appointment(company: Company, uid: str) -> bool:
    """Mark the local Appointment of a cancelled booking; False when there is none."""
    with transaction.atomic():
        ids = list(
            Appointment.objects.filter(company=company, calcom_booking_uid=uid).values_list("pk", flat=True)
        )
        updated = Appointment.objects.filter(pk__in=ids).update(status=Appointment.Status.CANCELLED)
        for pk in ids:
            signals.appointment(pk, company.pk, "cancelled", "calcom_operation")
    return bool(updated)


def confirm_appointment(company: Company, uid: str, *, by_customer: bool) -> int | None:
    """Mark the local Appointment of a confirmed booking (and who confirmed); its id, or None."""
    with transaction.atomic():
        appointment = (
            Appointment.objects.select_for_update().filter(company=company, calcom_booking_uid=uid).first()
        )
        if appointment is None:
            return None
        metadata = dict(appointment.metadata or {})
        if by_customer:
            metadata["confirmed_by_customer_at"] = timezone.now().isoformat()
        appointment.status = Appointment.Status.CONFIRMED
        appointment.metadata = metadata
        appointment.save(update_fields=["status", "metadata"])
        signals.appointment(appointment.pk, company.pk, "confirmed", "calcom_operation")
    return appointment.pk
