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
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from askpro.models import Appointment, Branch, Company, Customer, Service
from mcp_core.contracts import SYSTEM_PRINCIPAL, ErrorCode, MCPError, MCPRequest, OperationContext
from mcp_core.health import HealthResult, HealthStatus
from mcp_core.schemas import NoParams
from mcp_core.server import MCPServer, operation

from .client import CalcomClient, utc_iso
from .models import BookingRequest, CalcomEventType
from .schemas import (
    Alternative,
    AlternativesResult,
    AvailabilityResult,
    BookingInfo,
    BookingsResult,
    CancelBookingParams,
    CancelBookingResult,
    CheckAvailabilityParams,
    ConnectionResult,
    CreateBookingParams,
    CreateBookingResult,
    EventTypesResult,
    FindAlternativesParams,
    GetBookingsParams,
    GetEventTypesParams,
    Pagination,
    RescheduleBookingParams,
    RescheduleBookingResult,
    Slot,
    SyncResult,
    booking_info,
    event_type_info,
    zone_for,
)
from .tenancy import CALCOM_KEY, METADATA_TENANT, Access

STALE_PENDING = dt.timedelta(seconds=60)
METADATA_REQUEST = "askpro_request"


def _fingerprint(params: CreateBookingParams) -> str:
    normalized = msgspec.structs.replace(params, start=params.start.astimezone(dt.UTC))
    return hashlib.sha256(msgspec.json.encode(normalized)).hexdigest()


class CalcomServer(MCPServer):
    name = "calcom"
    description = "Cal.com: event types, availability and bookings of a tenant (API v2)."
    webhooks = "mcp_servers.calcom.webhooks"  # its inbound webhooks (@webhook)

    # --- configuration and health ---
    def is_configured(self) -> bool:
        return CALCOM_KEY.is_configured()

    def health(self) -> HealthResult:
        """GET /v2/me with the platform key and up to three tenants' own keys."""
        keys = [c.secret for c in CALCOM_KEY.health_credentials(3)]
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
        tz = zone_for(params.time_zone, company)
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
        tz = zone_for(params.time_zone, company)
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
        tz = zone_for(params.time_zone, company)
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
