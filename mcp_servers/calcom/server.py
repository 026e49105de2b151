"""The Cal.com server: event types, availability and bookings of one tenant, through Cal.com v2.

Credentials: the tenant's own Cal.com key, else the platform's CALCOM_API_KEY. A tenant on the
shared platform key only reaches the event types its branches and services are mapped to, and
only the bookings this platform made for it (local Appointment rows or the booking's
`askpro_company` metadata) — the shared account holds every such tenant's bookings.
This class declares the operations; what a tenant may reach is tenancy.py, slots
availability.py, and booking exactly once with its local Appointment bookings.py.
"""

from __future__ import annotations

import datetime as dt
import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from mcp_core.contracts import SYSTEM_PRINCIPAL, ErrorCode, MCPError, MCPRequest, OperationContext
from mcp_core.health import HealthResult, HealthStatus
from mcp_core.schemas import NoParams
from mcp_core.server import MCPServer, operation

from . import availability, bookings
from .client import CalcomClient
from .models import CalcomEventType
from .schemas import (
    AlternativesResult,
    AvailabilityResult,
    BookingsResult,
    CancelBookingParams,
    CancelBookingResult,
    CheckAvailabilityParams,
    ConfirmBookingParams,
    ConfirmBookingResult,
    ConnectionResult,
    CreateBookingParams,
    CreateBookingResult,
    EventTypesResult,
    FindAlternativesParams,
    GetBookingsParams,
    GetEventTypesParams,
    RescheduleBookingParams,
    RescheduleBookingResult,
    SyncResult,
    booking_info,
    event_type_info,
    zone_for,
)
from .tenancy import CALCOM_KEY, Access


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
        items = [event_type_info(raw) for raw in access.event_types(ctx)]
        if not params.include_hidden:
            items = [item for item in items if not item.hidden]
        return EventTypesResult(event_types=items, count=len(items))

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
        raw_items = Access(company).event_types(ctx)
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
        date_from, date_to = availability.date_range(params, tz)
        access = Access(company)
        access.check_event_type(params.event_type_id)
        slots = availability.slots(access, ctx, params.event_type_id, date_from, date_to, tz)
        return AvailabilityResult(
            event_type_id=params.event_type_id,
            time_zone=tz.key,
            date_from=date_from,
            date_to=date_to,
            slots=slots,
            count=len(slots),
        )

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
        return availability.alternatives(access, ctx, params, tz)

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
        return bookings.list_bookings(Access(ctx.require_tenant()), ctx, params)

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
        _check_future(params.start)
        access = Access(company)
        access.check_event_type(params.event_type_id)
        return bookings.create_booking(access, ctx, params, tz)

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
        _check_future(params.start)
        access = Access(company)
        access.owned_booking(ctx, params.booking_uid)
        info = booking_info(
            access.client.reschedule_booking(params.booking_uid, params.start, params.reason, ctx)
        )
        bookings.move_appointment(company, params.booking_uid, info)
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
        updated = bookings.cancel_appointment(company, params.booking_uid)
        return CancelBookingResult(booking=booking_info(raw), appointment_updated=updated)

    @operation(
        description="""Confirm a booking: one awaiting confirmation (pending) is confirmed in Cal.com;
        one already accepted stays as it is there. The local Appointment becomes confirmed (by_customer:
        the customer confirmed it, e.g. by replying to a reminder). A cancelled booking is a conflict.""",
        params=ConfirmBookingParams,
        result=ConfirmBookingResult,
        scope="write",
        idempotent=True,
        open_world=True,
        timeout=30,
    )
    def confirm_booking(self, ctx: OperationContext, params: ConfirmBookingParams) -> ConfirmBookingResult:
        company = ctx.require_tenant()
        access = Access(company)
        current = access.owned_booking(ctx, params.booking_uid)
        if current.get("status") in ("cancelled", "rejected"):
            raise MCPError(
                ErrorCode.CONFLICT,
                f"booking_uid: {params.booking_uid!r} is {current.get('status')}",
                details={"field": "booking_uid", "reason": str(current.get("status"))},
            )
        upstream = current.get("status") == "pending"
        if upstream:
            current = access.client.confirm_booking(params.booking_uid, ctx)
        appointment_id = bookings.confirm_appointment(
            company, params.booking_uid, by_customer=params.by_customer
        )
        return ConfirmBookingResult(
            booking=booking_info(current), confirmed_upstream=upstream, appointment_id=appointment_id
        )

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


def _check_future(start: dt.datetime) -> None:
    if start <= timezone.now():
        raise MCPError(ErrorCode.VALIDATION_ERROR, "start: must be in the future", details={"field": "start"})


def _health_context(seconds: float) -> OperationContext:
    request = MCPRequest(service="calcom", operation="health", params={}, principal=SYSTEM_PRINCIPAL)
    return OperationContext(
        request=request, principal=SYSTEM_PRINCIPAL, tenant=None, deadline=time.monotonic() + seconds
    )
