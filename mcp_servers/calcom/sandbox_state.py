"""The Cal.com sandbox's state: accounts (one per API key), their event types, weekly
schedules and bookings; the queries every route shares (an account's own event type or
booking, free slots) and the error they raise."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mcp_core.sandbox import SandboxServer

# The demo credential askpro/settings.py uses when SANDBOX=1 (CALCOM_API_KEY's default).
DEMO_API_KEY = "cal_test_sandbox_key"

# Event type ids askpro.demo.seed_demo maps its branches to (askpro/demo.py).
DEMO_MAPPED_EVENT_TYPES = (1000, 1001, 1002, 1010, 1011, 1012)


class CalcomError(Exception):
    """Raised inside a handler: becomes Cal.com's error envelope with this status."""

    def __init__(self, status: int, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details


def iso(value: dt.datetime) -> str:
    """Cal.com's UTC timestamps: milliseconds and a Z."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def iso_local(value: dt.datetime) -> str:
    """A slot start in the caller's time zone, e.g. 2050-09-05T09:00:00.000+02:00."""
    text = value.isoformat(timespec="milliseconds")
    return text


def zone(name: str, field: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CalcomError(400, f"{field} must be a valid IANA time zone") from None


def public(booking: dict[str, Any]) -> dict[str, Any]:
    """A booking without the sandbox's own bookkeeping fields (those starting with _)."""
    return {k: v for k, v in booking.items() if not k.startswith("_")}


class CalcomState(SandboxServer):
    """The in-memory Cal.com: CalcomSandbox (sandbox.py) builds it and seeds it in reset()."""

    accounts: dict[str, dict[str, Any]]  # api key -> user
    event_types: dict[int, dict[str, Any]]
    schedules: dict[int, dict[str, Any]]  # user id -> schedule
    bookings: dict[str, dict[str, Any]]  # uid -> booking
    _next_user: int
    _next_event_type: int
    _next_booking: int

    # --- state helpers (tests and the demo seed use them) ---
    def add_account(
        self,
        api_key: str,
        *,
        username: str | None = None,
        time_zone: str = "Europe/Berlin",
        demo: bool = True,
    ) -> dict[str, Any]:
        """A Cal.com user reachable with `api_key`; with demo=True it gets two event types."""
        with self.lock:
            user_id = self._next_user
            self._next_user += 1
            name = username or f"user{user_id}"
            user = {
                "id": user_id,
                "username": name,
                "email": f"{name}@sandbox.cal.example",
                "name": name.title(),
                "timeZone": time_zone,
                "weekStart": "Monday",
                "organizationId": None,
                "defaultScheduleId": user_id,
            }
            self.accounts[api_key] = user
            self.schedules[user_id] = {
                "timeZone": time_zone,
                # ISO weekdays 1=Monday .. 7=Sunday
                "availability": [{"days": [1, 2, 3, 4, 5], "startTime": "09:00", "endTime": "17:00"}],
            }
            if demo:
                self.add_event_type(api_key, title="Consultation", slug="consultation", length=30)
                self.add_event_type(api_key, title="Haircut", slug="haircut", length=60)
            return user

    def add_event_type(
        self,
        api_key: str,
        *,
        title: str,
        slug: str,
        length: int = 30,
        event_type_id: int | None = None,
        hidden: bool = False,
        requires_confirmation: bool = False,
    ) -> dict[str, Any]:
        with self.lock:
            user = self.accounts[api_key]
            if event_type_id is None:
                while self._next_event_type in self.event_types:
                    self._next_event_type += 1
                event_type_id = self._next_event_type
                self._next_event_type += 1
            event_type = {
                "id": event_type_id,
                "title": title,
                "slug": slug,
                "lengthInMinutes": length,
                "description": f"{title} ({length} min)",
                "hidden": hidden,
                "requiresConfirmation": requires_confirmation,
                "locations": [{"type": "address", "address": "Main street 1", "public": True}],
                "bookingFields": [
                    {"name": "name", "type": "name", "label": "Your name", "required": True},
                    {"name": "email", "type": "email", "label": "Email", "required": True},
                    {"name": "notes", "type": "textarea", "label": "Notes", "required": False},
                ],
                "ownerId": user["id"],
                "scheduleId": user["defaultScheduleId"],
                "slotInterval": None,
                "minimumBookingNotice": 0,
                "price": 0,
                "currency": "usd",
            }
            self.event_types[event_type_id] = event_type
            return event_type

    def set_schedule(self, api_key: str, availability: list[dict[str, Any]], time_zone: str | None = None):
        with self.lock:
            user = self.accounts[api_key]
            schedule = self.schedules[user["id"]]
            schedule["availability"] = availability
            if time_zone:
                schedule["timeZone"] = time_zone

    # --- queries the routes share ---
    def _own_event_type(self, user: dict[str, Any] | None, raw_id: Any) -> dict[str, Any]:
        try:
            event_type_id = int(raw_id)
        except (TypeError, ValueError):
            raise CalcomError(400, "eventTypeId must be an integer") from None
        with self.lock:
            event_type = self.event_types.get(event_type_id)
        if event_type is None or (user is not None and event_type["ownerId"] != user["id"]):
            raise CalcomError(404, f"Event type with id={event_type_id} not found")
        return event_type

    def _own_booking(self, user: dict[str, Any], uid: str) -> dict[str, Any]:
        with self.lock:
            booking = self.bookings.get(uid)
        if booking is None or booking["_owner"] != user["id"]:
            raise CalcomError(404, f"Booking with uid={uid} not found")
        return booking

    def free_slots(
        self, event_type: dict[str, Any], start: dt.datetime, end: dt.datetime, length: int
    ) -> list[dt.datetime]:
        """Slot starts (UTC) in [start, end) from the owner's schedule, minus bookings and the past."""
        schedule = self.schedules[event_type["ownerId"]]
        tz = ZoneInfo(schedule["timeZone"])
        step = dt.timedelta(minutes=event_type.get("slotInterval") or length)
        span = dt.timedelta(minutes=length)
        now = dt.datetime.now(dt.UTC)
        with self.lock:
            busy = [
                (b["_start"], b["_end"])
                for b in self.bookings.values()
                if b["_owner"] == event_type["ownerId"] and b["status"] in ("accepted", "pending")
            ]
        result = []
        day = start.astimezone(tz).date() - dt.timedelta(days=1)
        last = end.astimezone(tz).date() + dt.timedelta(days=1)
        while day <= last:
            for window in schedule["availability"]:
                if day.isoweekday() not in window["days"]:
                    continue
                opens = dt.datetime.combine(day, dt.time.fromisoformat(window["startTime"]), tz)
                closes = dt.datetime.combine(day, dt.time.fromisoformat(window["endTime"]), tz)
                slot = opens
                while slot + span <= closes:
                    utc = slot.astimezone(dt.UTC)
                    if (
                        start <= utc < end
                        and utc >= now
                        and not any(utc < b_end and utc + span > b_start for b_start, b_end in busy)
                    ):
                        result.append(utc)
                    slot += step
            day += dt.timedelta(days=1)
        return sorted(result)
