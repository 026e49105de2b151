"""The Cal.com sandbox's /v2/me, event types (2024-06-14) and slots (2024-09-04)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from mcp_core.sandbox import SandboxRequest, SandboxResponse, route

from .client import VERSION_BOOKINGS, VERSION_EVENT_TYPES, VERSION_SLOTS
from .sandbox_api import CalcomApi
from .sandbox_state import CalcomError, iso_local, zone


class EventTypeRoutes(CalcomApi):
    """The account, its event types and their free slots (mixed into CalcomSandbox)."""

    @route("GET", "/v2/me")
    def me(self, request: SandboxRequest) -> SandboxResponse:
        return self._serve(
            request,
            lambda user: self.ok(dict(user)),
            versions=(VERSION_BOOKINGS,),
            required_version=False,
        )

    @route("GET", "/v2/event-types")
    def list_event_types(self, request: SandboxRequest) -> SandboxResponse:
        def handler(user):
            with self.lock:
                items = [e for e in self.event_types.values() if e["ownerId"] == user["id"]]
            return self.ok(sorted(items, key=lambda e: e["id"]))

        return self._serve(request, handler, versions=(VERSION_EVENT_TYPES,), required_version=True)

    @route("GET", r"/v2/event-types/(?P<event_type_id>[^/]+)")
    def get_event_type(self, request: SandboxRequest) -> SandboxResponse:
        def handler(user):
            event_type = self._own_event_type(user, request.params["event_type_id"])
            return self.ok(event_type)

        return self._serve(request, handler, versions=(VERSION_EVENT_TYPES,), required_version=True)

    @route("GET", "/v2/slots")
    def slots(self, request: SandboxRequest) -> SandboxResponse:
        def handler(user):
            event_type = self._own_event_type(user, request.arg("eventTypeId"))
            tz = zone(request.arg("timeZone") or "UTC", "timeZone")
            start = _range_bound(request.arg("start"), "start", tz, end=False)
            end = _range_bound(request.arg("end"), "end", tz, end=True)
            if end <= start:
                raise CalcomError(400, "end must be after start")
            if end - start > dt.timedelta(days=62):
                raise CalcomError(400, "The range between start and end must not exceed 62 days")
            duration = request.arg("duration")
            length = int(duration) if duration and duration.isdigit() else event_type["lengthInMinutes"]
            rng = request.arg("format") == "range"
            data: dict[str, list[dict[str, Any]]] = {}
            for slot_start in self.free_slots(event_type, start, end, length):
                local = slot_start.astimezone(tz)
                item: dict[str, Any] = {"start": iso_local(local)}
                if rng:
                    item["end"] = iso_local(local + dt.timedelta(minutes=length))
                data.setdefault(local.date().isoformat(), []).append(item)
            return self.ok(data)

        return self._serve(request, handler, versions=(VERSION_SLOTS,), required_version=True, public=True)


def _range_bound(raw: str | None, field: str, tz: ZoneInfo, *, end: bool) -> dt.datetime:
    """A date (whole day in tz; `end` is inclusive) or an ISO datetime, as UTC."""
    if not raw:
        raise CalcomError(400, f"{field} is required")
    try:
        if len(raw) == 10:
            day = dt.date.fromisoformat(raw)
            value = dt.datetime.combine(day + dt.timedelta(days=1 if end else 0), dt.time(), tz)
        else:
            value = dt.datetime.fromisoformat(raw)
            if value.tzinfo is None:
                value = value.replace(tzinfo=dt.UTC)
    except ValueError:
        raise CalcomError(400, f"{field} must be a date (YYYY-MM-DD) or an ISO 8601 datetime") from None
    return value.astimezone(dt.UTC)
