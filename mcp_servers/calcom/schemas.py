"""Cal.com's shapes: parameter and result structs and the converters from Cal.com v2 objects
(no I/O here)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from askpro.models import Company
from mcp_core.contracts import ErrorCode, MCPError
from mcp_core.schemas import INT32_MAX, Params, Result

from .client import MAX_TAKE

Meta = msgspec.Meta
AwareDatetime = Annotated[dt.datetime, Meta(tz=True, description="ISO 8601 with a UTC offset")]
BookingUid = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,100}$", description="The Cal.com booking uid")]
EventTypeId = Annotated[int, Meta(ge=1, le=INT32_MAX, description="The Cal.com event type id")]
TimeZoneName = Annotated[
    str, Meta(min_length=1, max_length=64, description="IANA time zone (default: the tenant's)")
]

# A pending booking request older than this is taken over (its caller died mid-flight).


# --- result shapes shared by several operations ---
class EventTypeInfo(Result):
    id: int
    title: str
    slug: str
    length_minutes: int
    description: str
    hidden: bool


class AttendeeInfo(Result):
    name: str
    email: str
    time_zone: str


class BookingInfo(Result):
    id: int
    uid: str
    title: str
    status: str
    start: dt.datetime
    end: dt.datetime
    duration_minutes: int
    event_type_id: int | None
    attendees: list[AttendeeInfo]
    metadata: dict[str, str]
    cancellation_reason: str | None = None
    rescheduled_from_uid: str | None = None
    rescheduled_to_uid: str | None = None


class Slot(Result):
    start: dt.datetime
    end: dt.datetime


# --- get_event_types ---
class GetEventTypesParams(Params):
    include_hidden: Annotated[bool, Meta(description="Also list hidden event types")] = False


class EventTypesResult(Result):
    event_types: list[EventTypeInfo]
    count: int


# --- check_availability ---
class CheckAvailabilityParams(Params):
    event_type_id: EventTypeId
    date_from: Annotated[dt.date | None, Meta(description="First day (default: today)")] = None
    date_to: Annotated[dt.date | None, Meta(description="Last day, inclusive (default: +7 days)")] = None
    time_zone: TimeZoneName | None = None


class AvailabilityResult(Result):
    event_type_id: int
    time_zone: str
    date_from: dt.date
    date_to: dt.date
    slots: list[Slot]
    count: int


# --- get_bookings ---
BookingStatus = Literal["upcoming", "recurring", "past", "cancelled", "unconfirmed"]


class GetBookingsParams(Params):
    status: Annotated[list[BookingStatus] | None, Meta(description="Any of these states")] = None
    attendee_email: Annotated[str, Meta(max_length=254)] | None = None
    event_type_id: EventTypeId | None = None
    after_start: AwareDatetime | None = None
    before_end: AwareDatetime | None = None
    take: Annotated[int, Meta(ge=1, le=MAX_TAKE, description="Page size")] = 50
    skip: Annotated[int, Meta(ge=0, le=INT32_MAX, description="Offset")] = 0


class Pagination(Result):
    total_items: int
    returned_items: int
    take: int
    skip: int
    has_next_page: bool


class BookingsResult(Result):
    bookings: list[BookingInfo]
    pagination: Pagination
    hidden_other_tenants: Annotated[
        int, Meta(description="Items of this page left out: they belong to another tenant")
    ]


# --- create_booking ---
class CreateBookingParams(Params):
    event_type_id: EventTypeId
    start: AwareDatetime
    name: Annotated[str, Meta(min_length=1, max_length=200, description="The attendee's name")]
    email: Annotated[
        str, Meta(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254, description="Attendee email")
    ]
    time_zone: TimeZoneName | None = None
    phone: Annotated[str, Meta(pattern=r"^\+[1-9][0-9]{6,14}$", description="E.164")] | None = None
    notes: Annotated[str, Meta(max_length=2000)] | None = None
    length_minutes: Annotated[int, Meta(ge=5, le=720)] | None = None
    metadata: Annotated[dict[str, str], Meta(max_length=20)] | None = None


class CreateBookingResult(Result):
    booking: BookingInfo
    appointment_id: int | None
    replayed: Annotated[bool, Meta(description="True: an earlier identical request's booking")]
    idempotency_key: str


# --- reschedule_booking / cancel_booking ---
class RescheduleBookingParams(Params):
    booking_uid: BookingUid
    start: AwareDatetime
    reason: Annotated[str, Meta(max_length=500)] | None = None


class RescheduleBookingResult(Result):
    booking: BookingInfo
    previous_uid: str


class CancelBookingParams(Params):
    booking_uid: BookingUid
    reason: Annotated[str, Meta(max_length=500)] | None = None


class CancelBookingResult(Result):
    booking: BookingInfo
    appointment_updated: bool


# --- confirm_booking ---
class ConfirmBookingParams(Params):
    booking_uid: BookingUid
    by_customer: bool = False


class ConfirmBookingResult(Result):
    booking: BookingInfo
    confirmed_upstream: bool
    appointment_id: int | None


# --- find_alternative_slots ---
class FindAlternativesParams(Params):
    event_type_id: EventTypeId
    preferred_start: AwareDatetime
    search_days: Annotated[int, Meta(ge=1, le=30, description="Days either side to search")] = 7
    max_alternatives: Annotated[int, Meta(ge=1, le=20)] = 5
    time_zone: TimeZoneName | None = None


class Alternative(Result):
    start: dt.datetime
    end: dt.datetime
    minutes_from_preferred: int
    day_of_week: str


class AlternativesResult(Result):
    preferred_start: dt.datetime
    preferred_available: bool
    alternatives: list[Alternative]
    total_available: int


# --- sync_event_types / test_connection ---
class SyncResult(Result):
    synced: int
    created: int
    updated: int
    removed: int
    synced_at: dt.datetime


class ConnectionResult(Result):
    connected: bool
    credential_source: Literal["tenant", "platform"]
    user_id: int
    username: str
    time_zone: str | None
    latency_ms: float


# --- helpers ---
def zone_for(name: str | None, company: Company, field: str = "time_zone") -> ZoneInfo:
    try:
        return ZoneInfo(name or company.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise MCPError(
            ErrorCode.VALIDATION_ERROR,
            f"{field}: {name!r} is not an IANA time zone",
            details={"field": field},
        ) from None


def parse_time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def booking_info(raw: dict[str, Any]) -> BookingInfo:
    """Cal.com's 2024-08-13 booking object, reduced to what callers use."""
    return BookingInfo(
        id=int(raw["id"]),
        uid=str(raw["uid"]),
        title=str(raw.get("title") or ""),
        status=str(raw.get("status") or ""),
        start=parse_time(raw["start"]),
        end=parse_time(raw["end"]),
        duration_minutes=int(raw.get("duration") or 0),
        event_type_id=(raw.get("eventType") or {}).get("id", raw.get("eventTypeId")),
        attendees=[
            AttendeeInfo(
                name=str(a.get("name") or ""),
                email=str(a.get("email") or ""),
                time_zone=str(a.get("timeZone") or ""),
            )
            for a in raw.get("attendees") or []
        ],
        metadata={str(k): str(v) for k, v in (raw.get("metadata") or {}).items()},
        cancellation_reason=raw.get("cancellationReason"),
        rescheduled_from_uid=raw.get("rescheduledFromUid"),
        rescheduled_to_uid=raw.get("rescheduledToUid"),
    )


def event_type_info(raw: dict[str, Any]) -> EventTypeInfo:
    return EventTypeInfo(
        id=int(raw["id"]),
        title=str(raw.get("title") or ""),
        slug=str(raw.get("slug") or ""),
        length_minutes=int(raw.get("lengthInMinutes") or 0),
        description=str(raw.get("description") or ""),
        hidden=bool(raw.get("hidden")),
    )
