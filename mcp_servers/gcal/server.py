"""The Google Calendar server: each tenant's Google calendars through the tenant's own Google
credential (a service account or a connected user), and two-way sync with appointments.

A calendar is reachable once it is the tenant's: list_calendars records every calendar the
tenant's credential sees, and the admin maps them to branches and staff. Flows live in
sync.py (sync tokens, 410), appointments.py (appointments ↔ events, the conflict rule),
push.py (channels) and webhooks.py (notifications).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from django.utils import timezone

from mcp_core.contracts import ErrorCode, MCPError, OperationContext
from mcp_core.health import HealthResult, HealthStatus, probe_credentials
from mcp_core.schemas import NoParams
from mcp_core.server import MCPServer, operation

from . import appointments, client, push, sync
from .accounts import account_for, calendar_for, configured_accounts, idempotent_event_id
from .models import CalendarLink, PushChannel
from .schemas import (
    BusyInterval,
    CalendarBusy,
    CalendarInfo,
    CalendarList,
    CreateEventParams,
    DeleteEventParams,
    DeleteResult,
    EventList,
    EventResult,
    FreeBusyParams,
    FreeBusyResult,
    ListCalendarsParams,
    ListEventsParams,
    StopWatchParams,
    StopWatchResult,
    SyncCalendarParams,
    SyncResult,
    TestConnectionResult,
    UpdateEventParams,
    WatchCalendarParams,
    WatchResult,
    event_info,
    google_time,
)

MAX_RANGE = dt.timedelta(days=366)


def _range(start: dt.datetime | None, end: dt.datetime | None, *, end_field: str = "time_max") -> None:
    if start is not None and end is not None:
        if end <= start:
            raise MCPError(
                ErrorCode.VALIDATION_ERROR,
                f"{end_field}: must be after the start",
                details={"field": end_field},
            )
        if end - start > MAX_RANGE:
            raise MCPError(
                ErrorCode.VALIDATION_ERROR,
                f"{end_field}: at most 366 days after the start",
                details={"field": end_field},
            )


def _zone(company) -> str:
    return company.timezone or "UTC"


class GoogleCalendarServer(MCPServer):
    """A tenant's Google calendars: events, free/busy, sync tokens, push channels, appointments."""

    name = "gcal"
    description = "Google Calendar of a tenant's branches and staff, synced two ways with appointments"
    webhooks = "mcp_servers.gcal.webhooks"

    def is_configured(self) -> bool:
        return bool(configured_accounts())

    def health(self) -> HealthResult:
        """List one calendar with a few tenants' credentials."""
        checks = configured_accounts()[:3]
        if not checks:
            return HealthResult(HealthStatus.NOT_CONFIGURED, "no tenant has a Google credential")

        def list_one_calendar(row) -> None:
            _, auth = account_for(row.company)
            client.execute(None, auth, "list calendars", lambda s: s.calendarList().list(maxResults=1),
                           deadline=time.monotonic() + 2.0)  # fmt: skip

        return probe_credentials(
            checks,
            list_one_calendar,
            describe=lambda row: f"tenant {row.company.slug}",
            answered="{n} tenant credential(s) answered",
        )

    # --- calendars and events ---
    @operation(
        description="""The calendars the tenant's Google credential can reach (paged), each with the
        branch or staff member it belongs to. Every calendar listed becomes usable by the other
        operations.""",
        params=ListCalendarsParams,
        result=CalendarList,
        scope="read",
        read_only=True,
        open_world=True,
    )
    def list_calendars(self, ctx: OperationContext, params: ListCalendarsParams) -> CalendarList:
        company = ctx.require_tenant()
        _, auth = account_for(company)
        kwargs: dict[str, Any] = {"maxResults": params.max_results}
        if params.page_token:
            kwargs["pageToken"] = params.page_token
        answer = client.execute(ctx, auth, "list calendars", lambda s: s.calendarList().list(**kwargs))
        items = [i for i in answer.get("items") or [] if isinstance(i.get("id"), str) and len(i["id"]) <= 255]
        for item in items:
            CalendarLink.objects.get_or_create(company=company, calendar_id=item["id"])
        links = {
            link.calendar_id: link
            for link in CalendarLink.objects.filter(company=company, calendar_id__in=[i["id"] for i in items])
        }
        return CalendarList(
            calendars=[
                CalendarInfo(
                    calendar_id=i["id"],
                    summary=str(i.get("summaryOverride") or i.get("summary") or ""),
                    time_zone=i.get("timeZone"),
                    access_role=i.get("accessRole"),
                    primary=bool(i.get("primary")),
                    staff_id=links[i["id"]].staff_id,
                    branch_id=links[i["id"]].branch_id,
                )
                for i in items
            ],
            next_page_token=answer.get("nextPageToken"),
        )

    @operation(
        description="""Events of one of the tenant's calendars between time_min and time_max
        (default: from now, 7 days), single instances in start order; paged with page_token.""",
        params=ListEventsParams,
        result=EventList,
        scope="read",
        read_only=True,
        open_world=True,
    )
    def list_events(self, ctx: OperationContext, params: ListEventsParams) -> EventList:
        company = ctx.require_tenant()
        link = calendar_for(company, params.calendar_id)
        start = params.time_min or timezone.now()
        end = params.time_max or start + dt.timedelta(days=7)
        _range(start, end)
        _, auth = account_for(company)
        kwargs: dict[str, Any] = {
            "calendarId": link.calendar_id,
            "timeMin": google_time(start),
            "timeMax": google_time(end),
            "maxResults": params.max_results,
            "singleEvents": True,
            "orderBy": "startTime",
            "showDeleted": params.show_deleted,
        }
        if params.page_token:
            kwargs["pageToken"] = params.page_token
        answer = client.execute(ctx, auth, "list events", lambda s: s.events().list(**kwargs))
        return EventList(
            calendar_id=link.calendar_id,
            events=[event_info(e) for e in answer.get("items") or []],
            next_page_token=answer.get("nextPageToken"),
        )

    @operation(
        description="""Busy intervals of several of the tenant's calendars at once (Google's
        free/busy query), between time_min and time_max (at most 366 days).""",
        params=FreeBusyParams,
        result=FreeBusyResult,
        scope="read",
        read_only=True,
        open_world=True,
    )
    def get_free_busy(self, ctx: OperationContext, params: FreeBusyParams) -> FreeBusyResult:
        company = ctx.require_tenant()
        _range(params.time_min, params.time_max)
        ids = list(dict.fromkeys(params.calendar_ids))
        for calendar_id in ids:
            calendar_for(company, calendar_id, field="calendar_ids")
        _, auth = account_for(company)
        body = {"timeMin": google_time(params.time_min), "timeMax": google_time(params.time_max),
                "items": [{"id": i} for i in ids]}  # fmt: skip
        answer = client.execute(ctx, auth, "free/busy query", lambda s: s.freebusy().query(body=body))
        found = answer.get("calendars") or {}
        return FreeBusyResult(
            time_min=params.time_min,
            time_max=params.time_max,
            calendars=[
                CalendarBusy(
                    calendar_id=i,
                    busy=[
                        BusyInterval(start=b["start"], end=b["end"])
                        for b in (found.get(i) or {}).get("busy", [])
                    ],
                    errors=[str(e.get("reason")) for e in (found.get(i) or {}).get("errors", [])],
                )
                for i in ids
            ],
        )

    @operation(
        description="""Create an event in one of the tenant's calendars. With an Idempotency-Key the
        event id is derived from it, so the same request twice creates one event (the second
        answer has created false).""",
        params=CreateEventParams,
        result=EventResult,
        scope="write",
        open_world=True,
    )
    def create_event(self, ctx: OperationContext, params: CreateEventParams) -> EventResult:
        company = ctx.require_tenant()
        link = calendar_for(company, params.calendar_id)
        _range(params.start, params.end, end_field="end")
        _, auth = account_for(company)
        body: dict[str, Any] = {
            "summary": params.summary,
            "start": {
                "dateTime": google_time(params.start),
                **({"timeZone": params.time_zone} if params.time_zone else {}),
            },
            "end": {
                "dateTime": google_time(params.end),
                **({"timeZone": params.time_zone} if params.time_zone else {}),
            },
            "transparency": "opaque" if params.busy else "transparent",
        }
        if params.description:
            body["description"] = params.description
        if params.location:
            body["location"] = params.location
        key = ctx.request.idempotency_key
        if key:
            body["id"] = idempotent_event_id(company.pk, link.calendar_id, key)
        try:
            event = client.execute(ctx, auth, "insert event",
                                   lambda s: s.events().insert(calendarId=link.calendar_id, body=body))  # fmt: skip
            return EventResult(event=event_info(event), created=True)
        except MCPError as exc:
            if not key or exc.details.get("upstream_status") != 409:
                raise
        # The same request again: Google kept the first event under the derived id.
        event = client.execute(ctx, auth, "get event",
                               lambda s: s.events().get(calendarId=link.calendar_id, eventId=body["id"]))  # fmt: skip
        return EventResult(event=event_info(event), created=False)

    @operation(
        description="""Change an event (only the fields given). With etag (from list_events) the
        change is refused with conflict when the event changed in Google since, so no update is
        lost.""",
        params=UpdateEventParams,
        result=EventResult,
        scope="write",
        open_world=True,
    )
    def update_event(self, ctx: OperationContext, params: UpdateEventParams) -> EventResult:
        company = ctx.require_tenant()
        link = calendar_for(company, params.calendar_id)
        _range(params.start, params.end, end_field="end")
        body: dict[str, Any] = {}
        for name in ("summary", "description", "location"):
            if getattr(params, name) is not None:
                body[name] = getattr(params, name)
        if params.start is not None:
            body["start"] = {"dateTime": google_time(params.start)}
        if params.end is not None:
            body["end"] = {"dateTime": google_time(params.end)}
        if params.busy is not None:
            body["transparency"] = "opaque" if params.busy else "transparent"
        if not body:
            raise MCPError(ErrorCode.VALIDATION_ERROR, "summary: give at least one field to change",
                           details={"field": "summary"})  # fmt: skip
        _, auth = account_for(company)
        event = client.execute(
            ctx, auth, "patch event",
            lambda s: s.events().patch(calendarId=link.calendar_id, eventId=params.event_id, body=body),
            if_match=params.etag,
        )  # fmt: skip
        return EventResult(event=event_info(event), created=False)

    @operation(
        description="""Delete an event; with etag only if it has not changed in Google since.""",
        params=DeleteEventParams,
        result=DeleteResult,
        scope="write",
        destructive=True,
        idempotent=True,
        open_world=True,
    )
    def delete_event(self, ctx: OperationContext, params: DeleteEventParams) -> DeleteResult:
        company = ctx.require_tenant()
        link = calendar_for(company, params.calendar_id)
        _, auth = account_for(company)
        try:
            client.execute(
                ctx, auth, "delete event",
                lambda s: s.events().delete(calendarId=link.calendar_id, eventId=params.event_id),
                if_match=params.etag,
            )  # fmt: skip
        except MCPError as exc:
            if exc.details.get("upstream_status") != 410:  # already deleted: the same outcome
                raise
            return DeleteResult(event_id=params.event_id, deleted=False)
        return DeleteResult(event_id=params.event_id, deleted=True)

    # --- sync and push ---
    @operation(
        description="""Bring the stored busy time of one calendar up to date: incremental with the
        calendar's sync token, full the first time, when full is true, or when Google answers
        410 Gone (the token expired). Appointment events edited in Google are written back
        from their appointments (the conflict rule) and counted as conflicts.""",
        params=SyncCalendarParams,
        result=SyncResult,
        scope="write",
        idempotent=True,
        open_world=True,
        timeout=60,
    )
    def sync_calendar(self, ctx: OperationContext, params: SyncCalendarParams) -> SyncResult:
        company = ctx.require_tenant()
        link = calendar_for(company, params.calendar_id)
        _, auth = account_for(company)
        outcome = sync.sync_calendar(ctx, auth, link, force_full=params.full, zone=_zone(company))
        if outcome.reverted:
            appointments.put_back(link, outcome.reverted, deadline=ctx.deadline)
        return SyncResult(
            calendar_id=link.calendar_id,
            full=outcome.full,
            restarted_after_gone=outcome.restarted_after_gone,
            changed=outcome.changed,
            removed=outcome.removed,
            pages=outcome.pages,
            busy_blocks=link.busy.count(),
            conflicts=outcome.conflicts,
        )

    @operation(
        description="""Open a push channel on a calendar's events: Google notifies
        /webhooks/gcal of every change, which runs an incremental sync. Makes the first (full)
        sync when the calendar has none yet. Needs GCAL_PUBLIC_URL.""",
        params=WatchCalendarParams,
        result=WatchResult,
        scope="write",
        open_world=True,
        timeout=60,
    )
    def watch_calendar(self, ctx: OperationContext, params: WatchCalendarParams) -> WatchResult:
        company = ctx.require_tenant()
        link = calendar_for(company, params.calendar_id)
        row, auth = account_for(company)
        address = push.address_for(company)
        if not link.sync_token:
            sync.sync_calendar(ctx, auth, link, zone=_zone(company))
        channel = push.watch(ctx, row, auth, link, params.ttl_seconds)
        return WatchResult(
            channel_id=channel.channel_id, resource_id=channel.resource_id, expires_at=channel.expires_at,
            address=address,
        )  # fmt: skip

    @operation(
        description="""Close a push channel opened by watch_calendar.""",
        params=StopWatchParams,
        result=StopWatchResult,
        scope="write",
        idempotent=True,
        open_world=True,
    )
    def stop_watch(self, ctx: OperationContext, params: StopWatchParams) -> StopWatchResult:
        company = ctx.require_tenant()
        channel = PushChannel.objects.filter(company=company, channel_id=params.channel_id).first()
        if channel is None:
            raise MCPError(ErrorCode.NOT_FOUND, f"channel_id: no channel {params.channel_id} of this tenant",
                           details={"field": "channel_id"})  # fmt: skip
        if channel.stopped_at is not None:
            return StopWatchResult(channel_id=channel.channel_id, stopped=False)
        _, auth = account_for(company)
        push.stop(ctx, auth, channel)
        return StopWatchResult(channel_id=channel.channel_id, stopped=True)

    @operation(
        description="""Check the tenant's Google credential: obtain a token and list its calendars
        (never shows the credential).""",
        params=NoParams,
        result=TestConnectionResult,
        scope="read",
        read_only=True,
        open_world=True,
    )
    def test_connection(self, ctx: OperationContext, params: NoParams) -> TestConnectionResult:
        company = ctx.require_tenant()
        row, auth = account_for(company)
        started = time.perf_counter()
        answer = client.execute(ctx, auth, "list calendars", lambda s: s.calendarList().list(maxResults=250))
        items = answer.get("items") or []
        primary = next((i.get("id") for i in items if i.get("primary")), None)
        who = row.connected_as or row.delegated_user or primary
        if auth.mode == "service_account" and not who:
            try:
                import json

                who = json.loads(auth.secret).get("client_email")
            except ValueError:
                who = None
        return TestConnectionResult(
            ok=True,
            mode=auth.mode,  # type: ignore[arg-type]
            connected_as=who,
            calendars_visible=len(items),
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
        )
