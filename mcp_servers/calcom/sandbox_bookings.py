"""The Cal.com sandbox's bookings (2024-08-13): list with filters and offset paging, get,
create (check-and-book atomically), cancel and reschedule."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from typing import Any

from mcp_core.sandbox import SandboxRequest, SandboxResponse, route

from .client import MAX_TAKE, VERSION_BOOKINGS
from .sandbox_api import CalcomApi
from .sandbox_state import CalcomError, iso, public, zone

# A newer version exists for POST /v2/bookings only; accepted there (reference §1).
VERSION_BOOKINGS_CREATE_NEW = "2026-02-25"

BOOKING_STATUSES = ("upcoming", "recurring", "past", "cancelled", "unconfirmed")


class BookingRoutes(CalcomApi):
    """/v2/bookings (mixed into CalcomSandbox)."""

    @route("GET", "/v2/bookings")
    def list_bookings(self, request: SandboxRequest) -> SandboxResponse:
        def handler(user):
            take = _int_arg(request, "take", 100, 1, MAX_TAKE)
            skip = _int_arg(request, "skip", 0, 0, None)
            items = self._filter_bookings(user, request)
            total = len(items)
            page = items[skip : skip + take]
            pagination = {
                "totalItems": total,
                "remainingItems": max(0, total - skip - len(page)),
                "returnedItems": len(page),
                "itemsPerPage": take,
                "currentPage": skip // take + 1,
                "totalPages": max(1, -(-total // take)),
                "hasNextPage": skip + len(page) < total,
                "hasPreviousPage": skip > 0,
            }
            return self.ok([public(b) for b in page], pagination=pagination)

        return self._serve(request, handler, versions=(VERSION_BOOKINGS,), required_version=True)

    def _filter_bookings(self, user: dict[str, Any], request: SandboxRequest) -> list[dict[str, Any]]:
        now = dt.datetime.now(dt.UTC)
        statuses = [s for s in (request.arg("status") or "").split(",") if s]
        for status in statuses:
            if status not in BOOKING_STATUSES:
                raise CalcomError(400, f"status must be one of {', '.join(BOOKING_STATUSES)}")
        event_type_ids: set[int] = set()
        for name in ("eventTypeId", "eventTypeIds"):
            for raw in (request.arg(name) or "").split(","):
                if raw:
                    if not raw.strip().isdigit():
                        raise CalcomError(400, f"{name} must be integers")
                    event_type_ids.add(int(raw))
        bounds = {
            name: _strict_iso(request.arg(name), name)
            for name in ("afterStart", "beforeEnd", "afterCreatedAt", "beforeCreatedAt")
        }
        email = (request.arg("attendeeEmail") or "").lower()
        name_part = (request.arg("attendeeName") or "").lower()
        uid = request.arg("bookingUid")
        with self.lock:
            items = [b for b in self.bookings.values() if b["_owner"] == user["id"]]

        def status_ok(b: dict[str, Any]) -> bool:
            if not statuses:
                return True
            active = b["status"] in ("accepted", "pending")
            checks = {
                "upcoming": active and b["_end"] >= now,
                "past": b["_end"] < now and b["status"] != "cancelled",
                "cancelled": b["status"] in ("cancelled", "rejected"),
                "unconfirmed": b["status"] == "pending" and b["_end"] >= now,
                "recurring": bool(b.get("recurringBookingUid")),
            }
            return any(checks[s] for s in statuses)

        def keep(b: dict[str, Any]) -> bool:
            if not status_ok(b):
                return False
            if event_type_ids and b["eventTypeId"] not in event_type_ids:
                return False
            if email and not any(a["email"].lower() == email for a in b["attendees"]):
                return False
            if name_part and not any(name_part in a["name"].lower() for a in b["attendees"]):
                return False
            if uid and b["uid"] != uid:
                return False
            if bounds["afterStart"] and b["_start"] < bounds["afterStart"]:
                return False
            if bounds["beforeEnd"] and b["_end"] > bounds["beforeEnd"]:
                return False
            if bounds["afterCreatedAt"] and b["_created"] < bounds["afterCreatedAt"]:
                return False
            return not (bounds["beforeCreatedAt"] and b["_created"] > bounds["beforeCreatedAt"])

        items = [b for b in items if keep(b)]
        sort_key, reverse = "_start", False
        for param, key in (("sortStart", "_start"), ("sortEnd", "_end"), ("sortCreated", "_created")):
            direction = request.arg(param)
            if direction:
                if direction not in ("asc", "desc"):
                    raise CalcomError(400, f"{param} must be asc or desc")
                sort_key, reverse = key, direction == "desc"
        return sorted(items, key=lambda b: (b[sort_key], b["id"]), reverse=reverse)

    @route("GET", r"/v2/bookings/(?P<uid>[^/]+)")
    def get_booking(self, request: SandboxRequest) -> SandboxResponse:
        def handler(user):
            return self.ok(public(self._own_booking(user, request.params["uid"])))

        return self._serve(request, handler, versions=(VERSION_BOOKINGS,), required_version=True)

    @route("POST", "/v2/bookings")
    def create_booking(self, request: SandboxRequest) -> SandboxResponse:
        def handler(user):
            body = _json_body(request)
            event_type = self._event_type_for(user, body)
            attendee = body.get("attendee")
            if not isinstance(attendee, dict):
                raise CalcomError(400, "attendee must be an object", {"field": "attendee"})
            for name in ("name", "timeZone"):
                if not isinstance(attendee.get(name), str) or not attendee[name].strip():
                    raise CalcomError(400, f"attendee.{name} is required")
            zone(attendee["timeZone"], "attendee.timeZone")
            if attendee.get("email") is not None and "@" not in str(attendee["email"]):
                raise CalcomError(400, "attendee.email must be an email")
            if not attendee.get("email") and not attendee.get("phoneNumber"):
                raise CalcomError(400, "attendee.email or attendee.phoneNumber is required")
            start = _utc_start(body.get("start"))
            length = body.get("lengthInMinutes") or event_type["lengthInMinutes"]
            if not isinstance(length, int) or length <= 0:
                raise CalcomError(400, "lengthInMinutes must be a positive integer")
            metadata = body.get("metadata") or {}
            if not isinstance(metadata, dict) or len(metadata) > 50:
                raise CalcomError(400, "metadata must be an object with at most 50 keys")
            with self.lock:  # check-and-book atomically, as the upstream's DB would
                self._check_free(event_type, start, length, body.get("allowConflicts", False))
                booking = self._new_booking(user, event_type, start, length, attendee, body, metadata)
            return self.ok(public(booking), status=201)

        versions = (VERSION_BOOKINGS, VERSION_BOOKINGS_CREATE_NEW)
        return self._serve(request, handler, versions=versions, required_version=True, public=True)

    def _event_type_for(self, user: dict[str, Any] | None, body: dict[str, Any]) -> dict[str, Any]:
        if "eventTypeId" in body:
            if not isinstance(body["eventTypeId"], int) or isinstance(body["eventTypeId"], bool):
                raise CalcomError(400, "eventTypeId must be an integer")
            return self._own_event_type(user, body["eventTypeId"])
        slug, username = body.get("eventTypeSlug"), body.get("username")
        if slug and username:
            with self.lock:
                owner = next((u for u in self.accounts.values() if u["username"] == username), None)
                found = next(
                    (
                        e
                        for e in self.event_types.values()
                        if owner and e["ownerId"] == owner["id"] and e["slug"] == slug
                    ),
                    None,
                )
            if found is None:
                raise CalcomError(404, f"Event type {slug} of {username} not found")
            return found
        raise CalcomError(400, "eventTypeId (or eventTypeSlug with username) is required")

    def _check_free(self, event_type: dict[str, Any], start: dt.datetime, length: int, allow: bool) -> None:
        if start < dt.datetime.now(dt.UTC):
            raise CalcomError(400, "Attempting to book a meeting in the past.")
        if allow:
            return
        day_start = start - dt.timedelta(minutes=1)
        within = self.free_slots(event_type, day_start, start + dt.timedelta(minutes=1), length)
        if start in within:
            return
        end = start + dt.timedelta(minutes=length)
        taken = any(
            b["_owner"] == event_type["ownerId"]
            and b["status"] in ("accepted", "pending")
            and start < b["_end"]
            and end > b["_start"]
            for b in self.bookings.values()
        )
        if taken:
            raise CalcomError(409, "User either already has booking at this time or is not available")
        raise CalcomError(400, "The requested time is outside the event type's availability")

    def _new_booking(
        self,
        user: dict[str, Any] | None,
        event_type: dict[str, Any],
        start: dt.datetime,
        length: int,
        attendee: dict[str, Any],
        body: dict[str, Any],
        metadata: dict[str, Any],
        **extra: Any,
    ) -> dict[str, Any]:
        owner = next(u for u in self.accounts.values() if u["id"] == event_type["ownerId"])
        now = dt.datetime.now(dt.UTC)
        end = start + dt.timedelta(minutes=length)
        booking_id = self._next_booking
        self._next_booking += 1
        uid = secrets.token_urlsafe(16).replace("-", "a").replace("_", "b")
        responses = {"name": attendee["name"], "email": attendee.get("email", "")}
        responses.update(body.get("bookingFieldsResponses") or {})
        booking = {
            "id": booking_id,
            "uid": uid,
            "title": f"{event_type['title']} between {owner['name']} and {attendee['name']}",
            "description": (body.get("bookingFieldsResponses") or {}).get("notes", ""),
            "hosts": [
                {
                    "id": owner["id"],
                    "name": owner["name"],
                    "email": owner["email"],
                    "displayEmail": owner["email"],
                    "username": owner["username"],
                    "timeZone": owner["timeZone"],
                }
            ],
            # An event type that requires confirmation books "pending" until the host confirms.
            "status": "pending" if event_type.get("requiresConfirmation") else "accepted",
            "start": iso(start),
            "end": iso(end),
            "duration": length,
            "eventTypeId": event_type["id"],
            "eventType": {"id": event_type["id"], "slug": event_type["slug"]},
            "location": (body.get("location") or {}).get("type", "address")
            if isinstance(body.get("location"), dict)
            else "address",
            "absentHost": False,
            "createdAt": iso(now),
            "updatedAt": iso(now),
            "metadata": {str(k): str(v) for k, v in metadata.items()},
            "attendees": [
                {
                    "name": attendee["name"],
                    "email": attendee.get("email", ""),
                    "displayEmail": attendee.get("email", ""),
                    "timeZone": attendee["timeZone"],
                    "language": attendee.get("language", "en"),
                    "absent": False,
                    "phoneNumber": attendee.get("phoneNumber"),
                }
            ],
            "guests": list(body.get("guests") or []),
            "bookingFieldsResponses": responses,
            "_owner": owner["id"],
            "_start": start,
            "_end": end,
            "_created": now,
            **extra,
        }
        self.bookings[uid] = booking
        return booking

    @route("POST", r"/v2/bookings/(?P<uid>[^/]+)/cancel")
    def cancel_booking(self, request: SandboxRequest) -> SandboxResponse:
        def handler(user):
            body = _json_body(request, optional=True)
            reason = body.get("cancellationReason")
            if reason is not None and not isinstance(reason, str):
                raise CalcomError(400, "cancellationReason must be a string")
            with self.lock:
                booking = self._own_booking(user, request.params["uid"])
                if booking["status"] == "cancelled":
                    raise CalcomError(400, "This booking has already been cancelled.")
                booking["status"] = "cancelled"
                booking["cancellationReason"] = reason or ""
                booking["cancelledByEmail"] = user["email"]
                booking["updatedAt"] = iso(dt.datetime.now(dt.UTC))
            return self.ok(public(booking))

        return self._serve(request, handler, versions=(VERSION_BOOKINGS,), required_version=True)

    @route("POST", r"/v2/bookings/(?P<uid>[^/]+)/confirm")
    def confirm_booking(self, request: SandboxRequest) -> SandboxResponse:
        def handler(user):
            with self.lock:
                booking = self._own_booking(user, request.params["uid"])
                if booking["status"] != "pending":
                    raise CalcomError(400, f"Booking is {booking['status']}, not awaiting confirmation")
                booking["status"] = "accepted"
                booking["updatedAt"] = iso(dt.datetime.now(dt.UTC))
            return self.ok(public(booking))

        return self._serve(request, handler, versions=(VERSION_BOOKINGS,), required_version=True)

    @route("POST", r"/v2/bookings/(?P<uid>[^/]+)/reschedule")
    def reschedule_booking(self, request: SandboxRequest) -> SandboxResponse:
        def handler(user):
            body = _json_body(request)
            start = _utc_start(body.get("start"))
            reason = body.get("reschedulingReason")
            with self.lock:
                old = self._own_booking(user, request.params["uid"])
                if old["status"] in ("cancelled", "rejected"):
                    raise CalcomError(400, "Cannot reschedule a cancelled booking")
                event_type = self.event_types[old["eventTypeId"]]
                # The booking being moved must not block its own new time.
                old["status"], previous = "cancelled", old["status"]
                try:
                    self._check_free(event_type, start, old["duration"], False)
                except CalcomError:
                    old["status"] = previous
                    raise
                attendee = dict(old["attendees"][0])
                new = self._new_booking(
                    user,
                    event_type,
                    start,
                    old["duration"],
                    attendee,
                    {"bookingFieldsResponses": old["bookingFieldsResponses"], "guests": old["guests"]},
                    old["metadata"],
                    rescheduledFromUid=old["uid"],
                    reschedulingReason=reason or "",
                    rescheduledByEmail=body.get("rescheduledBy") or user["email"],
                )
                old["rescheduledToUid"] = new["uid"]
                old["updatedAt"] = iso(dt.datetime.now(dt.UTC))
            return self.ok(public(new), status=201)

        return self._serve(request, handler, versions=(VERSION_BOOKINGS,), required_version=True)


# --- parsing helpers: each failure is a 400 naming the field ---
def _json_body(request: SandboxRequest, *, optional: bool = False) -> dict[str, Any]:
    if not request.body and optional:
        return {}
    if "application/json" not in request.headers.get("content-type", ""):
        raise CalcomError(400, "Content-Type must be application/json")
    try:
        body = json.loads(request.body or b"null")
    except ValueError:
        raise CalcomError(400, "Request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise CalcomError(400, "Request body must be a JSON object")
    return body


def _utc_start(raw: Any) -> dt.datetime:
    if not isinstance(raw, str) or not raw:
        raise CalcomError(400, "start is required (ISO 8601, UTC)")
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise CalcomError(400, "start must be an ISO 8601 datetime in UTC") from None
    if value.tzinfo is None or value.utcoffset() != dt.timedelta(0):
        raise CalcomError(400, "start must be in UTC (e.g. 2026-03-10T09:00:00Z)")
    return value.astimezone(dt.UTC)


def _strict_iso(raw: str | None, field: str) -> dt.datetime | None:
    if not raw:
        return None
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise CalcomError(400, f"{field} must be a strict ISO 8601 datetime") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _int_arg(request: SandboxRequest, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.arg(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < low or (high is not None and int(raw) > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise CalcomError(400, f"{name} must be an integer {bound}")
    return int(raw)
