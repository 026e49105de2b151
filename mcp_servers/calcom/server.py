"""The Cal.com server: event types, availability and bookings of one tenant, through Cal.com v2.

Credentials: the tenant's own Cal.com key, else the platform's CALCOM_API_KEY. A tenant on the
shared platform key only reaches the event types its branches and services are mapped to, and
only the bookings this platform made for it (local Appointment rows or the booking's
`askpro_company` metadata) — the shared account holds every such tenant's bookings.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from askpro.models import Appointment, Branch, Company, Customer, Service
from mcp_core.contracts import SYSTEM_PRINCIPAL, ErrorCode, MCPError, MCPRequest, OperationContext
from mcp_core.health import HealthResult, HealthStatus
from mcp_core.schemas import INT32_MAX, NoParams, Params, Result
from mcp_core.server import MCPServer, operation

from .client import CalcomClient, utc_iso
from .models import BookingRequest, CalcomEventType

Meta = msgspec.Meta
AwareDatetime = Annotated[dt.datetime, Meta(tz=True, description="ISO 8601 with a UTC offset")]
BookingUid = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,100}$", description="The Cal.com booking uid")]
EventTypeId = Annotated[int, Meta(ge=1, le=INT32_MAX, description="The Cal.com event type id")]
TimeZoneName = Annotated[
    str, Meta(min_length=1, max_length=64, description="IANA time zone (default: the tenant's)")
]

# A pending booking request older than this is taken over (its caller died mid-flight).
STALE_PENDING = dt.timedelta(seconds=60)
METADATA_TENANT = "askpro_company"
METADATA_REQUEST = "askpro_request"


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
    take: Annotated[int, Meta(ge=1, le=250, description="Page size")] = 50
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
def _zone(name: str | None, company: Company, field: str = "time_zone") -> ZoneInfo:
    try:
        return ZoneInfo(name or company.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise MCPError(
            ErrorCode.VALIDATION_ERROR,
            f"{field}: {name!r} is not an IANA time zone",
            details={"field": field},
        ) from None


def _parse(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def booking_info(raw: dict[str, Any]) -> BookingInfo:
    """Cal.com's 2024-08-13 booking object, reduced to what callers use."""
    return BookingInfo(
        id=int(raw["id"]),
        uid=str(raw["uid"]),
        title=str(raw.get("title") or ""),
        status=str(raw.get("status") or ""),
        start=_parse(raw["start"]),
        end=_parse(raw["end"]),
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


class Access:
    """One tenant's way into Cal.com: the client and what the tenant may reach with it."""

    def __init__(self, company: Company) -> None:
        own = company.calcom_api_key
        key = own or settings.CALCOM_API_KEY
        if not key:
            raise MCPError(
                ErrorCode.NOT_CONFIGURED,
                "calcom: no Cal.com API key for this tenant and no platform CALCOM_API_KEY",
            )
        self.company = company
        self.own_account = bool(own)
        self.client = CalcomClient(base_url=settings.CALCOM_BASE_URL, api_key=key)

    def mapped_event_type_ids(self) -> set[int]:
        ids = set(
            Branch.objects.filter(company=self.company, calcom_event_type_id__isnull=False).values_list(
                "calcom_event_type_id", flat=True
            )
        )
        ids |= set(
            Service.objects.filter(company=self.company, calcom_event_type_id__isnull=False).values_list(
                "calcom_event_type_id", flat=True
            )
        )
        return ids

    def check_event_type(self, event_type_id: int) -> None:
        """On the shared account, only the tenant's mapped event types are its own."""
        if not self.own_account and event_type_id not in self.mapped_event_type_ids():
            raise MCPError(
                ErrorCode.NOT_FOUND,
                f"event_type_id: {event_type_id} is not one of this tenant's Cal.com event types",
                details={"field": "event_type_id"},
            )

    def owns(self, raw: dict[str, Any], local_uids: set[str] | None = None) -> bool:
        if self.own_account:
            return True
        if (raw.get("metadata") or {}).get(METADATA_TENANT) == str(self.company.pk):
            return True
        if local_uids is not None:
            return raw.get("uid") in local_uids
        return Appointment.objects.filter(company=self.company, calcom_booking_uid=raw.get("uid")).exists()

    def owned_booking(self, ctx: OperationContext, uid: str) -> dict[str, Any]:
        """The booking, if it belongs to this tenant; otherwise not_found (no existence leak)."""
        try:
            raw = self.client.booking(uid, ctx)
        except MCPError as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                raise MCPError(
                    ErrorCode.NOT_FOUND, f"booking_uid: no booking {uid!r}", details={"field": "booking_uid"}
                ) from None
            raise
        if not self.owns(raw):
            raise MCPError(
                ErrorCode.NOT_FOUND, f"booking_uid: no booking {uid!r}", details={"field": "booking_uid"}
            )
        return raw


def _fingerprint(params: CreateBookingParams) -> str:
    normalized = msgspec.structs.replace(params, start=params.start.astimezone(dt.UTC))
    return hashlib.sha256(msgspec.json.encode(normalized)).hexdigest()


class CalcomServer(MCPServer):
    name = "calcom"
    description = "Cal.com: event types, availability and bookings of a tenant (API v2)."

    # --- configuration and health ---
    def is_configured(self) -> bool:
        return bool(settings.CALCOM_API_KEY) or (
            Company.objects.filter(is_active=True).exclude(calcom_api_key="").exists()
        )

    def health(self) -> HealthResult:
        """GET /v2/me with the platform key, else with up to three tenants' own keys."""
        keys = [settings.CALCOM_API_KEY] if settings.CALCOM_API_KEY else []
        if not keys:
            companies = Company.objects.filter(is_active=True).exclude(calcom_api_key="")[:3]
            keys = [c.calcom_api_key for c in companies]
        if not keys:
            return HealthResult(HealthStatus.NOT_CONFIGURED, "no Cal.com API key")
        started = time.perf_counter()
        failures = []
        for key in keys:
            ctx = _health_context(3.0)
            try:
                CalcomClient(base_url=settings.CALCOM_BASE_URL, api_key=key).me(ctx)
            except MCPError as exc:
                failures.append(exc.message)
        latency = (time.perf_counter() - started) * 1000
        if len(failures) == len(keys):
            return HealthResult(HealthStatus.UNHEALTHY, failures[0], latency_ms=latency)
        if failures:
            detail = f"{len(failures)} of {len(keys)} keys failing: {failures[0]}"
            return HealthResult(HealthStatus.DEGRADED, detail, latency_ms=latency)
        if latency > 2000 * len(keys):
            return HealthResult(HealthStatus.DEGRADED, "slow answers", latency_ms=latency)
        return HealthResult(HealthStatus.HEALTHY, "GET /v2/me ok", latency_ms=latency)

    # --- event types ---
    @operation(
        description="List the tenant's Cal.com event types (id, title, slug, length).",
        params=GetEventTypesParams,
        result=EventTypesResult,
        scope="read",
        read_only=True,
        open_world=True,
        timeout=15,
    )
    def get_event_types(self, ctx: OperationContext, params: GetEventTypesParams) -> EventTypesResult:
        access = Access(ctx.require_tenant())
        items = [event_type_info(raw) for raw in self._visible_event_types(access, ctx)]
        if not params.include_hidden:
            items = [item for item in items if not item.hidden]
        return EventTypesResult(event_types=items, count=len(items))

    def _visible_event_types(self, access: Access, ctx: OperationContext) -> list[dict[str, Any]]:
        raw = access.client.event_types(ctx)
        if not isinstance(raw, list):
            raise MCPError(ErrorCode.UPSTREAM_ERROR, "calcom: event types answer is not a list")
        if access.own_account:
            return raw
        mapped = access.mapped_event_type_ids()
        return [item for item in raw if item.get("id") in mapped]

    @operation(
        description="""Copy the tenant's Cal.com event types into local records (CalcomEventType):
        new ones are created, changed ones updated, ones gone from Cal.com removed.""",
        params=NoParams,
        result=SyncResult,
        scope="write",
        idempotent=True,
        open_world=True,
        timeout=30,
    )
    def sync_event_types(self, ctx: OperationContext, params: NoParams) -> SyncResult:
        company = ctx.require_tenant()
        access = Access(company)
        raw_items = self._visible_event_types(access, ctx)
        now = timezone.now()
        created = updated = 0
        with transaction.atomic():  # after the upstream call: no transaction across the network
            seen = []
            for raw in raw_items:
                info = event_type_info(raw)
                seen.append(info.id)
                _, was_created = CalcomEventType.objects.update_or_create(
                    company=company,
                    calcom_id=info.id,
                    defaults={
                        "title": info.title[:255],
                        "slug": info.slug[:255],
                        "length_minutes": info.length_minutes,
                        "description": info.description,
                        "hidden": info.hidden,
                        "raw": raw,
                        "synced_at": now,
                    },
                )
                created += was_created
                updated += not was_created
            removed, _ = CalcomEventType.objects.filter(company=company).exclude(calcom_id__in=seen).delete()
        return SyncResult(synced=len(seen), created=created, updated=updated, removed=removed, synced_at=now)

    # --- availability ---
    @operation(
        description="""Free slots of one event type between two dates (inclusive), in a time zone
        (default: the tenant's). At most 31 days.""",
        params=CheckAvailabilityParams,
        result=AvailabilityResult,
        scope="read",
        read_only=True,
        open_world=True,
        timeout=15,
    )
    def check_availability(
        self, ctx: OperationContext, params: CheckAvailabilityParams
    ) -> AvailabilityResult:
        company = ctx.require_tenant()
        tz = _zone(params.time_zone, company)
        today = timezone.now().astimezone(tz).date()
        date_from = params.date_from or today
        date_to = params.date_to or date_from + dt.timedelta(days=7)
        if date_to < date_from:
            raise MCPError(
                ErrorCode.VALIDATION_ERROR,
                "date_to: must not be before date_from",
                details={"field": "date_to"},
            )
        if (date_to - date_from).days > 31:
            raise MCPError(
                ErrorCode.VALIDATION_ERROR,
                "date_to: at most 31 days after date_from",
                details={"field": "date_to"},
            )
        access = Access(company)
        access.check_event_type(params.event_type_id)
        slots = self._slots(access, ctx, params.event_type_id, date_from, date_to, tz)
        return AvailabilityResult(
            event_type_id=params.event_type_id,
            time_zone=tz.key,
            date_from=date_from,
            date_to=date_to,
            slots=slots,
            count=len(slots),
        )

    def _slots(
        self,
        access: Access,
        ctx: OperationContext,
        event_type_id: int,
        start: dt.date | dt.datetime,
        end: dt.date | dt.datetime,
        tz: ZoneInfo,
    ) -> list[Slot]:
        data = access.client.slots(
            event_type_id=event_type_id, start=start, end=end, time_zone=tz.key, ctx=ctx
        )
        if not isinstance(data, dict):
            raise MCPError(ErrorCode.UPSTREAM_ERROR, "calcom: slots answer is not keyed by date")
        slots = []
        for items in data.values():
            for item in items:
                slot_start = dt.datetime.fromisoformat(item["start"])
                slot_end = dt.datetime.fromisoformat(item["end"]) if item.get("end") else slot_start
                slots.append(Slot(start=slot_start, end=slot_end))
        return sorted(slots, key=lambda s: s.start)

    @operation(
        description="""Free slots nearest to a preferred start (searching search_days either side),
        best first; says whether the preferred start itself is free.""",
        params=FindAlternativesParams,
        result=AlternativesResult,
        scope="read",
        read_only=True,
        open_world=True,
        timeout=20,
    )
    def find_alternative_slots(
        self, ctx: OperationContext, params: FindAlternativesParams
    ) -> AlternativesResult:
        company = ctx.require_tenant()
        tz = _zone(params.time_zone, company)
        access = Access(company)
        access.check_event_type(params.event_type_id)
        preferred = params.preferred_start.astimezone(dt.UTC)
        span = dt.timedelta(days=params.search_days)
        window_start = max(preferred - span, timezone.now().astimezone(dt.UTC))
        window_end = preferred + span
        if window_end <= window_start:
            raise MCPError(
                ErrorCode.VALIDATION_ERROR,
                "preferred_start: lies too far in the past to search around",
                details={"field": "preferred_start"},
            )
        slots = self._slots(access, ctx, params.event_type_id, window_start, window_end, tz)
        preferred_available = any(s.start == preferred for s in slots)
        ranked = sorted(
            (s for s in slots if s.start != preferred),
            key=lambda s: (abs((s.start - preferred).total_seconds()), s.start),
        )[: params.max_alternatives]
        alternatives = [
            Alternative(
                start=s.start,
                end=s.end,
                minutes_from_preferred=round((s.start - preferred).total_seconds() / 60),
                day_of_week=s.start.astimezone(tz).strftime("%A"),
            )
            for s in ranked
        ]
        return AlternativesResult(
            preferred_start=params.preferred_start,
            preferred_available=preferred_available,
            alternatives=alternatives,
            total_available=len(slots),
        )

    # --- bookings ---
    @operation(
        description="""The tenant's bookings, filtered (status, attendee email, event type, time
        range) and paginated (take/skip).""",
        params=GetBookingsParams,
        result=BookingsResult,
        scope="read",
        read_only=True,
        open_world=True,
        timeout=15,
    )
    def get_bookings(self, ctx: OperationContext, params: GetBookingsParams) -> BookingsResult:
        company = ctx.require_tenant()
        access = Access(company)
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
                        total_items=0,
                        returned_items=0,
                        take=params.take,
                        skip=params.skip,
                        has_next_page=False,
                    ),
                    hidden_other_tenants=0,
                )
            query["eventTypeIds"] = ",".join(str(i) for i in sorted(event_type_ids))
        raw_items, pagination = access.client.bookings(query, ctx)
        local_uids = None
        if not access.own_account:
            uids = [item.get("uid") for item in raw_items]
            local_uids = set(
                Appointment.objects.filter(company=company, calcom_booking_uid__in=uids).values_list(
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

    @operation(
        description="""Book a slot. Idempotent: the same request (or the same idempotency key) twice
        makes one booking; a key reused with other params is a conflict. Also records a local
        Appointment.""",
        params=CreateBookingParams,
        result=CreateBookingResult,
        scope="write",
        idempotent=True,
        open_world=True,
        timeout=30,
    )
    def create_booking(self, ctx: OperationContext, params: CreateBookingParams) -> CreateBookingResult:
        company = ctx.require_tenant()
        tz = _zone(params.time_zone, company)
        if params.start <= timezone.now():
            raise MCPError(
                ErrorCode.VALIDATION_ERROR, "start: must be in the future", details={"field": "start"}
            )
        access = Access(company)
        access.check_event_type(params.event_type_id)
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
            attendee: dict[str, Any] = {"name": params.name, "email": params.email, "timeZone": tz.key}
            if params.phone:
                attendee["phoneNumber"] = params.phone
            body: dict[str, Any] = {
                "start": utc_iso(params.start),
                "eventTypeId": params.event_type_id,
                "attendee": attendee,
                # Ours last, so a caller cannot forge another tenant's ownership tag.
                "metadata": {
                    **(params.metadata or {}),
                    METADATA_TENANT: str(company.pk),
                    METADATA_REQUEST: request_tag,
                },
            }
            if params.notes:
                body["bookingFieldsResponses"] = {"notes": params.notes}
            if params.length_minutes:
                body["lengthInMinutes"] = params.length_minutes
            try:
                raw = access.client.create_booking(body, ctx)
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
        info = booking_info(raw)
        with transaction.atomic():
            appointment = _record_appointment(company, info, params)
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

    @operation(
        description="""Move a booking to a new start. Cal.com makes a new booking (new uid) and
        cancels the old one; the local Appointment follows.""",
        params=RescheduleBookingParams,
        result=RescheduleBookingResult,
        scope="write",
        open_world=True,
        timeout=30,
    )
    def reschedule_booking(
        self, ctx: OperationContext, params: RescheduleBookingParams
    ) -> RescheduleBookingResult:
        company = ctx.require_tenant()
        if params.start <= timezone.now():
            raise MCPError(
                ErrorCode.VALIDATION_ERROR, "start: must be in the future", details={"field": "start"}
            )
        access = Access(company)
        access.owned_booking(ctx, params.booking_uid)
        raw = access.client.reschedule_booking(params.booking_uid, params.start, params.reason, ctx)
        info = booking_info(raw)
        with transaction.atomic():
            Appointment.objects.filter(company=company, calcom_booking_uid=params.booking_uid).update(
                calcom_booking_uid=info.uid,
                calcom_booking_id=info.id,
                starts_at=info.start,
                ends_at=info.end,
                status=Appointment.Status.SCHEDULED,
            )
        return RescheduleBookingResult(booking=info, previous_uid=params.booking_uid)

    @operation(
        description="Cancel a booking in Cal.com (the attendee is notified); the local Appointment is marked cancelled.",
        params=CancelBookingParams,
        result=CancelBookingResult,
        scope="write",
        destructive=True,
        open_world=True,
        timeout=30,
    )
    def cancel_booking(self, ctx: OperationContext, params: CancelBookingParams) -> CancelBookingResult:
        company = ctx.require_tenant()
        access = Access(company)
        current = access.owned_booking(ctx, params.booking_uid)
        if current.get("status") == "cancelled":
            raise MCPError(
                ErrorCode.CONFLICT,
                f"booking_uid: {params.booking_uid!r} is already cancelled",
                details={"field": "booking_uid"},
            )
        raw = access.client.cancel_booking(params.booking_uid, params.reason, ctx)
        with transaction.atomic():
            updated = Appointment.objects.filter(
                company=company, calcom_booking_uid=params.booking_uid
            ).update(status=Appointment.Status.CANCELLED)
        return CancelBookingResult(booking=booking_info(raw), appointment_updated=bool(updated))

    @operation(
        description="Check the tenant's Cal.com credentials with an authenticated GET /v2/me.",
        params=NoParams,
        result=ConnectionResult,
        scope="read",
        read_only=True,
        open_world=True,
        timeout=10,
    )
    def test_connection(self, ctx: OperationContext, params: NoParams) -> ConnectionResult:
        access = Access(ctx.require_tenant())
        started = time.perf_counter()
        me = access.client.me(ctx)
        return ConnectionResult(
            connected=True,
            credential_source="tenant" if access.own_account else "platform",
            user_id=int(me.get("id") or 0),
            username=str(me.get("username") or ""),
            time_zone=me.get("timeZone"),
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
        )


# --- create_booking's idempotency ---
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
            "take": 250,
        },
        ctx,
    )
    for item in items:
        if (item.get("metadata") or {}).get(METADATA_REQUEST) == request_tag and item.get(
            "status"
        ) != "cancelled":
            return item
    return None


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


def _health_context(seconds: float) -> OperationContext:
    request = MCPRequest(service="calcom", operation="health", params={}, principal=SYSTEM_PRINCIPAL)
    return OperationContext(
        request=request, principal=SYSTEM_PRINCIPAL, tenant=None, deadline=time.monotonic() + seconds
    )
