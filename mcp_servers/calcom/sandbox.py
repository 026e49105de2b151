"""A stateful fake of the Cal.com API v2 (see shared reference upstream-apis.md §1).

It follows the contract where a client could notice: `Authorization: Bearer cal_…`,
`cal-api-version` per endpoint group (missing on bookings routes -> 400, so a client that
forgets it fails here as it would hit the legacy controller upstream), the success envelope
`{"status":"success","data":…}`, NestJS error bodies, offset pagination, per-key rate
limits with the X-RateLimit-*-Default headers, slots computed from a weekly schedule, and
bookings that can be created, listed, cancelled and rescheduled. It also signs and sends
webhooks exactly as Cal.com does (X-Cal-Signature-256, hex HMAC-SHA256 of the raw body).

Unverified choices (the reference does not say): booking a slot that is taken answers
409 ConflictException; a 429 also carries Retry-After.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests

from mcp_core.sandbox import SandboxRequest, SandboxResponse, SandboxServer, route

# The versions per endpoint group are the client's (one definition for both sides).
from .client import VERSION_BOOKINGS, VERSION_EVENT_TYPES, VERSION_SLOTS

# The demo credential askpro/settings.py uses when SANDBOX=1 (CALCOM_API_KEY's default).
DEMO_API_KEY = "cal_test_sandbox_key"

# Event type ids askpro.demo.seed_demo maps its branches to (askpro/demo.py).
DEMO_MAPPED_EVENT_TYPES = (1000, 1001, 1002, 1010, 1011, 1012)

# A newer version exists for POST /v2/bookings only; accepted there (reference §1).
VERSION_BOOKINGS_CREATE_NEW = "2026-02-25"

ERROR_CODES = {
    400: "BadRequestException",
    401: "UnauthorizedException",
    403: "ForbiddenException",
    404: "NotFoundException",
    409: "ConflictException",
    429: "ThrottlerException",
    500: "InternalServerErrorException",
    502: "BadGatewayException",
    503: "ServiceUnavailableException",
    504: "GatewayTimeoutException",
}

BOOKING_STATUSES = ("upcoming", "recurring", "past", "cancelled", "unconfirmed")


def sign_webhook(body: bytes, secret: str) -> dict[str, str]:
    """The headers Cal.com sends with a webhook delivery of `body` signed with `secret`.

    The signature is hex(HMAC-SHA256(secret, raw body)), no prefix and no timestamp; a
    webhook without a secret carries the literal "no-secret-provided" (receivers must
    treat that as invalid).
    """
    signature = (
        hmac.new(secret.encode(), body, hashlib.sha256).hexdigest() if secret else "no-secret-provided"
    )
    return {
        "Content-Type": "application/json",
        "X-Cal-Signature-256": signature,
        "X-Cal-Webhook-Version": "2021-10-20",
    }


def iso(value: dt.datetime) -> str:
    """Cal.com's UTC timestamps: milliseconds and a Z."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def iso_local(value: dt.datetime) -> str:
    """A slot start in the caller's time zone, e.g. 2050-09-05T09:00:00.000+02:00."""
    text = value.isoformat(timespec="milliseconds")
    return text


class CalcomError(Exception):
    def __init__(self, status: int, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details


class CalcomSandbox(SandboxServer):
    """Cal.com v2, in memory. One account per API key; each account owns event types,
    a weekly schedule (Mon–Fri 09:00–17:00 in its time zone by default) and bookings."""

    service = "calcom"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_keys: list[str] | None = None,
        rate_limit: int = 120,
        rate_window: float = 60.0,
        demo: bool = True,
    ) -> None:
        super().__init__(host, port)
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self._seed = ([DEMO_API_KEY] if api_keys is None else list(api_keys), demo)
        self.reset()

    def reset(self) -> None:
        """Back to the initial state: seeded accounts only, no bookings, faults or request log."""
        with self.lock:
            self.faults.clear()
            self.request_log.clear()
            self.accounts: dict[str, dict[str, Any]] = {}  # api key -> user
            self.event_types: dict[int, dict[str, Any]] = {}
            self.schedules: dict[int, dict[str, Any]] = {}  # user id -> schedule
            self.bookings: dict[str, dict[str, Any]] = {}  # uid -> booking
            self.webhook_deliveries: list[dict[str, Any]] = []
            self._rate: dict[str, tuple[float, int]] = {}  # key -> (window start, count)
            self._next_user = 1
            self._next_event_type = 1001
            self._next_booking = 5001
            keys, demo = self._seed
            for key in keys:
                self.add_account(key, demo=demo)
            if demo and DEMO_API_KEY in keys:
                # The event types `manage.py seed_demo` maps its branches to (1000 + 10·tenant +
                # branch), so that SANDBOX=1 demo tenants can book on the shared demo account.
                for event_type_id in DEMO_MAPPED_EVENT_TYPES:
                    if event_type_id not in self.event_types:
                        self.add_event_type(
                            DEMO_API_KEY,
                            title=f"Appointment {event_type_id}",
                            slug=f"appointment-{event_type_id}",
                            length=30,
                            event_type_id=event_type_id,
                        )

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

    def describe(self) -> str:
        return f"demo key {DEMO_API_KEY}, {len(self.event_types)} event types, Mon-Fri 09:00-17:00"

    # --- webhooks ---
    def send_webhook(
        self, url: str, trigger_event: str, payload: dict[str, Any], secret: str, *, timeout: float = 5.0
    ) -> int:
        """POST one delivery to `url` the way Cal.com does; returns the receiver's status."""
        body = json.dumps(
            {"triggerEvent": trigger_event, "createdAt": iso(dt.datetime.now(dt.UTC)), "payload": payload}
        ).encode()
        if not url.startswith(("http://", "https://")):
            raise ValueError("webhook url must be http(s)")
        # A fresh connection per delivery, like Cal.com's fetch: no pooled state between tests.
        status = requests.post(
            url, data=body, headers=sign_webhook(body, secret), timeout=timeout
        ).status_code
        with self.lock:
            self.webhook_deliveries.append({"url": url, "triggerEvent": trigger_event, "status": status})
        return status

    def webhook_payload(self, booking: dict[str, Any]) -> dict[str, Any]:
        """A booking as a webhook payload (upper-case status, startTime/endTime)."""
        event_type = self.event_types.get(booking["eventTypeId"], {})
        host = booking["hosts"][0] if booking["hosts"] else {}
        return {
            "bookingId": booking["id"],
            "uid": booking["uid"],
            "title": booking["title"],
            "type": event_type.get("slug", ""),
            "eventTypeId": booking["eventTypeId"],
            "startTime": booking["start"],
            "endTime": booking["end"],
            "length": booking["duration"],
            "status": booking["status"].upper(),
            "organizer": {k: host.get(k) for k in ("id", "name", "email", "username", "timeZone")},
            "attendees": [
                {
                    "name": a["name"],
                    "email": a["email"],
                    "timeZone": a["timeZone"],
                    "language": {"locale": "en"},
                }
                for a in booking["attendees"]
            ],
            "location": booking["location"],
            "description": booking["description"],
            "responses": booking["bookingFieldsResponses"],
            "metadata": booking["metadata"],
            "cancellationReason": booking.get("cancellationReason"),
            "rescheduleReason": booking.get("reschedulingReason"),
        }

    # --- the contract's envelopes ---
    def error(
        self, request: SandboxRequest, status: int, message: str, details: Any = None
    ) -> SandboxResponse:
        error: dict[str, Any] = {"code": ERROR_CODES.get(status, "HttpException"), "message": message}
        if details is not None:
            error["details"] = details
        body = {
            "status": "error",
            "timestamp": iso(dt.datetime.now(dt.UTC)),
            "path": request.path,
            "error": error,
        }
        return SandboxResponse(status, body)

    def fault_body(self, status: int) -> Any:
        return {
            "status": "error",
            "timestamp": iso(dt.datetime.now(dt.UTC)),
            "path": "",
            "error": {
                "code": ERROR_CODES.get(status, "HttpException"),
                "message": f"injected fault {status}",
            },
        }

    def not_found(self, request: SandboxRequest) -> SandboxResponse:
        return self.error(request, 404, f"Cannot {request.method} {request.path}")

    @staticmethod
    def ok(data: Any, status: int = 200, **extra: Any) -> SandboxResponse:
        return SandboxResponse(status, {"status": "success", "data": data, **extra})

    def _guard(
        self,
        request: SandboxRequest,
        *,
        versions: tuple[str, ...] | None,
        required_version: bool,
        public: bool = False,
    ) -> tuple[dict[str, Any] | None, dict[str, str]]:
        """Auth, rate limit and version checks; raises CalcomError. Returns (user, headers)."""
        header = request.headers.get("authorization", "")
        user = None
        if header or not public:
            token = header[7:].strip() if header[:7].lower() == "bearer " else ""
            user = self.accounts.get(token) if token.startswith("cal_") else None
            if user is None:
                message = (
                    "No authorization header provided" if not header else "Invalid API Key"
                )  # the key itself is never echoed
                raise CalcomError(401, message)
        headers = self._rate_limit(header or "anonymous")
        version = request.headers.get("cal-api-version")
        if versions is not None:
            if version is None and required_version:
                raise CalcomError(
                    400,
                    f"cal-api-version header is required for {request.path} "
                    f"(use {versions[0]}); without it the legacy 2024-04-15 controller answers",
                )
            if version is not None and version not in versions:
                raise CalcomError(400, f"Unsupported cal-api-version {version!r} for {request.path}")
        return user, headers

    def _rate_limit(self, key: str) -> dict[str, str]:
        now = time.time()
        with self.lock:
            started, count = self._rate.get(key, (now, 0))
            if now - started >= self.rate_window:
                started, count = now, 0
            count += 1
            self._rate[key] = (started, count)
        reset = int(started + self.rate_window)
        headers = {
            "X-RateLimit-Limit-Default": str(self.rate_limit),
            "X-RateLimit-Remaining-Default": str(max(0, self.rate_limit - count)),
            "X-RateLimit-Reset-Default": str(reset),
        }
        if count > self.rate_limit:
            headers["Retry-After"] = str(max(1, int(reset - now + 0.999)))
            raise CalcomError(429, "ThrottlerException: Too Many Requests", {"headers": headers})
        return headers

    def _serve(self, request: SandboxRequest, handler, **guard: Any) -> SandboxResponse:
        try:
            user, headers = self._guard(request, **guard)
            response = handler(user)
        except CalcomError as exc:
            headers = {}
            if exc.status == 429:
                headers = exc.details["headers"]
                response = self.error(request, 429, exc.message)
            else:
                response = self.error(request, exc.status, exc.message, exc.details)
        response.headers.update(headers)
        return response

    # --- /v2/me ---
    @route("GET", "/v2/me")
    def me(self, request: SandboxRequest) -> SandboxResponse:
        return self._serve(
            request,
            lambda user: self.ok(dict(user)),
            versions=(VERSION_BOOKINGS,),
            required_version=False,
        )

    # --- event types (2024-06-14) ---
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

    # --- slots (2024-09-04) ---
    @route("GET", "/v2/slots")
    def slots(self, request: SandboxRequest) -> SandboxResponse:
        def handler(user):
            event_type = self._own_event_type(user, request.arg("eventTypeId"))
            tz = _zone(request.arg("timeZone") or "UTC", "timeZone")
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

    # --- bookings (2024-08-13) ---
    @route("GET", "/v2/bookings")
    def list_bookings(self, request: SandboxRequest) -> SandboxResponse:
        def handler(user):
            take = _int_arg(request, "take", 100, 1, 250)
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
            return self.ok([_public(b) for b in page], pagination=pagination)

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
            return self.ok(_public(self._own_booking(user, request.params["uid"])))

        return self._serve(request, handler, versions=(VERSION_BOOKINGS,), required_version=True)

    def _own_booking(self, user: dict[str, Any], uid: str) -> dict[str, Any]:
        with self.lock:
            booking = self.bookings.get(uid)
        if booking is None or booking["_owner"] != user["id"]:
            raise CalcomError(404, f"Booking with uid={uid} not found")
        return booking

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
            _zone(attendee["timeZone"], "attendee.timeZone")
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
            return self.ok(_public(booking), status=201)

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
            "status": "accepted",
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
            return self.ok(_public(booking))

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
            return self.ok(_public(new), status=201)

        return self._serve(request, handler, versions=(VERSION_BOOKINGS,), required_version=True)


SANDBOX_CLASS = CalcomSandbox


# --- parsing helpers: each failure is a 400 naming the field ---
def _public(booking: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in booking.items() if not k.startswith("_")}


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


def _zone(name: str, field: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CalcomError(400, f"{field} must be a valid IANA time zone") from None


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
