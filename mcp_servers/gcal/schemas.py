"""The Google Calendar server's params and results (msgspec Structs) and the converters from
Google's resources to them (no I/O here)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec

from mcp_core.schemas import Params, Result

Meta = msgspec.Meta

CalendarId = Annotated[
    str,
    Meta(
        pattern=r"^[A-Za-z0-9._%+#@-]{1,255}$",
        max_length=255,
        description="A Google calendar id of this tenant (from list_calendars), e.g. staff@example.com",
    ),
]
EventId = Annotated[
    str, Meta(pattern=r"^[A-Za-z0-9_]{1,1024}$", max_length=1024, description="Google's event id")
]
ETag = Annotated[
    str,
    Meta(
        pattern=r'^"?[A-Za-z0-9+/=_-]{1,90}"?$',
        max_length=100,
        description="The event's etag as last read: the change is refused (conflict) if it changed since",
    ),
]
PageToken = Annotated[
    str, Meta(pattern=r"^[A-Za-z0-9_=-]{1,500}$", description="next_page_token of the previous page")
]
AwareTime = Annotated[dt.datetime, Meta(tz=True, description="RFC 3339 with a time zone offset")]
Text = Annotated[str, Meta(max_length=1024)]
TimeZone = Annotated[str, Meta(pattern=r"^[A-Za-z_]{1,32}(/[A-Za-z0-9_+-]{1,32}){0,2}$", description="IANA, e.g. Europe/Berlin")]  # fmt: skip


class ListCalendarsParams(Params):
    max_results: Annotated[int, Meta(ge=1, le=250)] = 100
    page_token: PageToken | None = None


class ListEventsParams(Params):
    calendar_id: CalendarId
    time_min: AwareTime | None = None
    time_max: AwareTime | None = None
    max_results: Annotated[int, Meta(ge=1, le=2500)] = 250
    page_token: PageToken | None = None
    show_deleted: bool = False


class FreeBusyParams(Params):
    calendar_ids: Annotated[list[CalendarId], Meta(min_length=1, max_length=50)]
    time_min: AwareTime
    time_max: AwareTime


class CreateEventParams(Params):
    calendar_id: CalendarId
    summary: Annotated[str, Meta(min_length=1, max_length=1024)]
    start: AwareTime
    end: AwareTime
    description: Annotated[str, Meta(max_length=8000)] = ""
    location: Text = ""
    time_zone: TimeZone | None = None
    busy: Annotated[bool, Meta(description="Blocks the time (opaque); false: shown as free")] = True


class UpdateEventParams(Params):
    calendar_id: CalendarId
    event_id: EventId
    etag: ETag | None = None
    summary: Annotated[str, Meta(min_length=1, max_length=1024)] | None = None
    start: AwareTime | None = None
    end: AwareTime | None = None
    description: Annotated[str, Meta(max_length=8000)] | None = None
    location: Text | None = None
    busy: bool | None = None


class DeleteEventParams(Params):
    calendar_id: CalendarId
    event_id: EventId
    etag: ETag | None = None


class SyncCalendarParams(Params):
    calendar_id: CalendarId
    full: Annotated[bool, Meta(description="Drop the sync token and read the calendar from scratch")] = False


class WatchCalendarParams(Params):
    calendar_id: CalendarId
    ttl_seconds: Annotated[int, Meta(ge=300, le=30 * 24 * 3600)] | None = None


class StopWatchParams(Params):
    channel_id: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="From watch_calendar")]


# --- results ---
class CalendarInfo(Result):
    calendar_id: str
    summary: str
    time_zone: str | None
    access_role: str | None
    primary: bool
    staff_id: int | None
    branch_id: int | None


class CalendarList(Result):
    calendars: list[CalendarInfo]
    next_page_token: str | None


class EventInfo(Result):
    event_id: str
    status: str
    summary: str
    start: str | None
    end: str | None
    all_day: bool
    busy: bool
    etag: str | None
    updated: str | None
    html_link: str | None
    appointment_id: int | None


class EventList(Result):
    calendar_id: str
    events: list[EventInfo]
    next_page_token: str | None


class EventResult(Result):
    event: EventInfo
    created: bool


class DeleteResult(Result):
    event_id: str
    deleted: bool


class BusyInterval(Result):
    start: str
    end: str


class CalendarBusy(Result):
    calendar_id: str
    busy: list[BusyInterval]
    errors: list[str]


class FreeBusyResult(Result):
    time_min: dt.datetime
    time_max: dt.datetime
    calendars: list[CalendarBusy]


class SyncResult(Result):
    calendar_id: str
    full: bool
    restarted_after_gone: bool
    changed: int
    removed: int
    pages: int
    busy_blocks: int
    conflicts: int


class WatchResult(Result):
    channel_id: str
    resource_id: str
    expires_at: dt.datetime | None
    address: str


class StopWatchResult(Result):
    channel_id: str
    stopped: bool


class TestConnectionResult(Result):
    ok: bool
    mode: Literal["service_account", "oauth"]
    connected_as: str | None
    calendars_visible: int
    latency_ms: float


def event_info(event: dict[str, Any]) -> EventInfo:
    """Google's Event resource -> EventInfo (an all-day event has dates, not times)."""
    start, end = event.get("start") or {}, event.get("end") or {}
    private = (event.get("extendedProperties") or {}).get("private") or {}
    appointment = private.get("askpro_appointment")
    return EventInfo(
        event_id=str(event.get("id", "")),
        status=str(event.get("status") or "confirmed"),
        summary=str(event.get("summary") or ""),
        start=start.get("dateTime") or start.get("date"),
        end=end.get("dateTime") or end.get("date"),
        all_day="date" in start,
        busy=event.get("transparency") != "transparent",
        etag=event.get("etag"),
        updated=event.get("updated"),
        html_link=event.get("htmlLink"),
        appointment_id=int(appointment) if str(appointment or "").isdigit() else None,
    )


def google_time(value: dt.datetime) -> str:
    """RFC 3339 as Google takes it (UTC, Z)."""
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
