"""A stateful fake of the Google Calendar API v3 on 127.0.0.1, driven by the discovery document
the client library ships: every request is matched to a method of `calendar.v3.json` and its
parameters checked against it (an unknown or malformed one is a 400, as at Google). It serves
calendarList.list, events (list with paging and sync tokens, get, insert with client-chosen
ids, update/patch/delete with If-Match), events.watch, channels.stop and freebusy.query, plus
Google's OAuth token endpoint (refresh tokens, service-account JWT grants with domain-wide
delegation, authorization codes) and a consent page that redirects back with a code.

Errors have Google's envelope ({"error": {"code", "message", "errors": [{domain, reason,
message}], "status"}}); faults injected with status 403 carry reason rateLimitExceeded, as
Google's rate-limit answers do. Push notifications owed to channels wait in `outbox` until
`deliver()` (tests route them into Django's test client through `sink`); the demo sandbox
posts them itself.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode

import jwt
import requests

from mcp_core.sandbox import SandboxRequest, SandboxResponse, SandboxServer, route

from . import discovery
from .sandbox_state import EVENT_ID, CalendarState, Channel, decode_token, encode_token, parse_time, rfc3339

API_PREFIX = "/calendar/v3/"
DEMO_USER = "demo@askpro.example"
DEMO_REFRESH_TOKEN = "1//sandbox-demo-refresh-token"  # noqa: S105 - the sandbox's demo credential
DEMO_CLIENT_ID = "sandbox-client.apps.googleusercontent.com"
DEMO_CLIENT_SECRET = "sandbox-client-secret"  # noqa: S105 - the sandbox's demo credential
MAX_PAGE = 2500
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                409: "ALREADY_EXISTS", 410: "FAILED_PRECONDITION", 412: "FAILED_PRECONDITION",
                429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}  # fmt: skip
EVENT_FIELDS = ("summary", "description", "location", "transparency", "extendedProperties", "status",
                "colorId", "visibility", "reminders", "attendees")  # fmt: skip
Sink = Callable[[str, dict[str, str], bytes], Any]


def google_error(
    status: int, reason: str, message: str, *, domain: str = "global", **extra: str
) -> SandboxResponse:
    item = {"domain": domain, "reason": reason, "message": message, **extra}
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [item],
            "status": STATUS_NAMES.get(status, "UNKNOWN"),
        }
    }
    return SandboxResponse(status, body)


def oauth_error(error: str, description: str, status: int = 400) -> SandboxResponse:
    return SandboxResponse(status, {"error": error, "error_description": description})


def sign_webhook(body: bytes, secret: str, *, channel_id: str | None = None, state: str = "exists",
                 message_number: int = 1) -> dict[str, str]:  # fmt: skip
    """Headers of a push notification on a channel whose token we minted with `secret` (tests
    and the webhook matrix): Google sends back the token it was given at watch time."""
    from .webhooks import channel_token

    channel_id = channel_id or secrets.token_hex(16)
    return {
        "X-Goog-Channel-ID": channel_id,
        "X-Goog-Channel-Token": channel_token(secret, channel_id),
        "X-Goog-Resource-ID": "sandbox-resource",
        "X-Goog-Resource-State": state,
        "X-Goog-Message-Number": str(message_number),
    }


class GoogleCalendarSandbox(SandboxServer):
    """Calendars, events, sync tokens, push channels and OAuth of Google Calendar, in memory."""

    service = "gcal"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, demo: bool = True) -> None:
        super().__init__(host, port)
        self.state = CalendarState()
        self.sink: Sink | None = None  # tests: where deliver() sends notifications
        self.auto_deliver = demo  # the demo sandbox posts notifications itself
        self.oauth_clients = {DEMO_CLIENT_ID: DEMO_CLIENT_SECRET}
        self.delivered: list[tuple[str, dict[str, str]]] = []
        self.reset(demo=demo)

    def reset(self, *, demo: bool = False) -> None:
        self.state.reset()
        with self.lock:
            self.request_log.clear()
            self.faults.clear()
            self.delivered.clear()
        if demo:
            self.state.add_user(DEMO_USER)
            with self.state.lock:
                self.state.refresh_tokens[DEMO_REFRESH_TOKEN] = DEMO_USER
            start = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
            self.add_event(DEMO_USER, summary="Team meeting", start=start, end=start + dt.timedelta(hours=1))

    # --- helpers for tests and the demo ---
    def add_event(self, calendar_id: str, *, start: dt.datetime, end: dt.datetime, summary: str = "Busy",
                  event_id: str | None = None, **fields: Any) -> dict[str, Any]:  # fmt: skip
        """An event made in Google by someone else (the staff member, a colleague)."""
        body = {"summary": summary, "start": {"dateTime": rfc3339(start)}, "end": {"dateTime": rfc3339(end)}}
        body.update(fields)
        with self.state.lock:
            calendar = self.state.calendars[calendar_id]
            event = self._new_event(calendar, event_id or None, body)
            self.state.notify(calendar)
        self._maybe_deliver()
        return dict(event)

    def edit_event(self, calendar_id: str, event_id: str, **changes: Any) -> dict[str, Any]:
        """Change an event as someone in Google would (a new ETag, a notification)."""
        with self.state.lock:
            calendar = self.state.calendars[calendar_id]
            event = calendar.events[event_id]
            for name, value in changes.items():
                if name in ("start", "end") and isinstance(value, dt.datetime):
                    value = {"dateTime": rfc3339(value)}
                event[name] = value
            self._touch(calendar, event)
            self.state.notify(calendar)
        self._maybe_deliver()
        return dict(event)

    def remove_event(self, calendar_id: str, event_id: str) -> None:
        with self.state.lock:
            calendar = self.state.calendars[calendar_id]
            event = calendar.events[event_id]
            event["status"] = "cancelled"
            self._touch(calendar, event)
            self.state.notify(calendar)
        self._maybe_deliver()

    def expire_sync_tokens(self, calendar_id: str) -> None:
        """Make every sync token issued so far for the calendar answer 410 Gone."""
        with self.state.lock:
            self.state.calendars[calendar_id].min_sync_seq = self.state.seq + 1

    def deliver(self) -> int:
        """Send the notifications owed so far (to `sink`, else by HTTP POST); returns how many."""
        with self.state.lock:
            owed, self.state.outbox = self.state.outbox, []
        for address, headers in owed:
            self.delivered.append((address, headers))
            if self.sink is not None:
                self.sink(address, headers, b"")
            else:
                # Google drops a notification the receiver does not take.
                with contextlib.suppress(requests.RequestException):
                    requests.post(address, data=b"", headers=headers, timeout=5)
        return len(owed)

    def _maybe_deliver(self) -> None:
        if self.auto_deliver and self.state.outbox:
            threading.Thread(target=self.deliver, daemon=True).start()

    # --- Google's error shapes ---
    def fault_body(self, status: int) -> Any:
        if status == 403:
            return google_error(403, "rateLimitExceeded", "Rate Limit Exceeded", domain="usageLimits").body
        if status == 429:
            return google_error(429, "rateLimitExceeded", "Rate Limit Exceeded", domain="usageLimits").body
        return google_error(status, "backendError", "Backend Error").body

    def not_found(self, request: SandboxRequest) -> SandboxResponse:
        return google_error(404, "notFound", "Not Found")

    # --- OAuth ---
    @route("GET", "/o/oauth2/v2/auth")
    def consent(self, request: SandboxRequest) -> SandboxResponse:
        """Google's consent page, already agreed to by `consent_user` (or login_hint)."""
        client_id = request.arg("client_id") or ""
        redirect_uri = request.arg("redirect_uri") or ""
        if client_id not in self.oauth_clients:
            return SandboxResponse(401, "Error 401: invalid_client", {"Content-Type": "text/html"})
        if request.arg("response_type") != "code" or not redirect_uri:
            return SandboxResponse(400, "Error 400: invalid_request", {"Content-Type": "text/html"})
        user = (
            request.arg("login_hint") or self.state.consent_user or next(iter(sorted(self.state.users)), None)
        )
        query: dict[str, str] = {}
        if user is None:
            query["error"] = "access_denied"
        else:
            code = "4/" + secrets.token_urlsafe(24)
            with self.state.lock:
                self.state.codes[code] = (user, redirect_uri)
            query["code"] = code
            query["scope"] = request.arg("scope") or ""
        if request.arg("state") is not None:
            query["state"] = request.arg("state") or ""
        return SandboxResponse(302, b"", {"Location": f"{redirect_uri}?{urlencode(query)}"})

    @route("POST", "/token")
    def token(self, request: SandboxRequest) -> SandboxResponse:
        form = {k: v[-1] for k, v in parse_qs(request.body.decode(errors="replace")).items()}
        grant = form.get("grant_type")
        if grant == JWT_GRANT:
            return self._jwt_grant(request, form.get("assertion", ""))
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        if self.oauth_clients.get(client_id) != client_secret or not client_secret:
            return oauth_error("invalid_client", "The OAuth client was not found.", 401)
        if grant == "refresh_token":
            with self.state.lock:
                principal = self.state.refresh_tokens.get(form.get("refresh_token", ""))
            if principal is None:
                return oauth_error("invalid_grant", "Token has been expired or revoked.")
            return SandboxResponse(200, self._token_answer(principal))
        if grant == "authorization_code":
            with self.state.lock:
                found = self.state.codes.pop(form.get("code", ""), None)
            if found is None or found[1] != form.get("redirect_uri"):
                return oauth_error("invalid_grant", "Bad Request")
            refresh = "1//" + secrets.token_urlsafe(32)
            with self.state.lock:
                self.state.refresh_tokens[refresh] = found[0]
            return SandboxResponse(200, {**self._token_answer(found[0]), "refresh_token": refresh})
        return oauth_error("unsupported_grant_type", "Invalid grant_type: " + str(grant)[:50])

    def _jwt_grant(self, request: SandboxRequest, assertion: str) -> SandboxResponse:
        try:
            claims = jwt.decode(assertion, options={"verify_signature": False})
            account = self.state.service_accounts.get(str(claims.get("iss")))
            if account is None:
                return oauth_error("invalid_grant", "Invalid JWT Signature.")
            claims = jwt.decode(assertion, account["public_key"], algorithms=["RS256"],
                                options={"verify_aud": False})  # fmt: skip
        except jwt.PyJWTError:
            return oauth_error("invalid_grant", "Invalid JWT Signature.")
        if not str(claims.get("aud", "")).endswith("/token") or "calendar" not in str(
            claims.get("scope", "")
        ):
            return oauth_error("invalid_scope", "Invalid audience or scope.")
        subject = claims.get("sub")
        if subject and subject != claims["iss"]:
            if not account["delegation"]:
                return oauth_error(
                    "unauthorized_client",
                    "Client is unauthorized to retrieve access tokens using this method, or client not "
                    "authorized for any of the scopes requested.",
                    401,
                )
            return SandboxResponse(200, self._token_answer(str(subject)))
        return SandboxResponse(200, self._token_answer(str(claims["iss"])))

    def _token_answer(self, principal: str) -> dict[str, Any]:
        token = self.state.issue_access_token(principal)
        return {"access_token": token, "expires_in": 3599, "token_type": "Bearer",
                "scope": "https://www.googleapis.com/auth/calendar"}  # fmt: skip

    # --- the API, one door for every method of the discovery document ---
    @route("GET", r"/calendar/v3/(?P<rest>.+)")
    def api_get(self, request: SandboxRequest) -> SandboxResponse:
        return self._api(request)

    @route("POST", r"/calendar/v3/(?P<rest>.+)")
    def api_post(self, request: SandboxRequest) -> SandboxResponse:
        return self._api(request)

    @route("PUT", r"/calendar/v3/(?P<rest>.+)")
    def api_put(self, request: SandboxRequest) -> SandboxResponse:
        return self._api(request)

    @route("PATCH", r"/calendar/v3/(?P<rest>.+)")
    def api_patch(self, request: SandboxRequest) -> SandboxResponse:
        return self._api(request)

    @route("DELETE", r"/calendar/v3/(?P<rest>.+)")
    def api_delete(self, request: SandboxRequest) -> SandboxResponse:
        return self._api(request)

    def _api(self, request: SandboxRequest) -> SandboxResponse:
        found = discovery.match(request.method, request.path[len(API_PREFIX) :])
        if found is None:
            return self.not_found(request)
        name, method, path_params = found
        auth = request.headers.get("authorization", "")
        principal = self.state.principal_for(auth[7:]) if auth.startswith("Bearer ") else None
        if principal is None:
            return google_error(401, "authError", "Request had invalid authentication credentials.",
                                location="Authorization", locationType="header")  # fmt: skip
        problem = discovery.parameter_problem(method, request.query)
        if problem:
            return google_error(400, "invalidParameter", problem)
        params = {k: unquote(v) for k, v in path_params.items()}
        handler = getattr(self, "m_" + name.replace(".", "_"), None)
        if handler is None:
            return google_error(501, "notImplemented", f"the sandbox does not serve {name}")
        body: Any = None
        if request.body:
            try:
                body = json.loads(request.body)
            except ValueError:
                return google_error(400, "parseError", "Parse Error")
            if not isinstance(body, dict):
                return google_error(400, "parseError", "Parse Error")
        with self.state.lock:
            answer = handler(request, principal, params, body or {})
        self._maybe_deliver()
        return answer

    def _calendar(self, principal: str, calendar_id: str):
        calendar_id = principal if calendar_id == "primary" else calendar_id
        calendar = self.state.calendars.get(calendar_id)
        return calendar if calendar is not None and calendar.can(principal) else None

    # calendarList.list
    def m_calendarList_list(self, request, principal, params, body) -> SandboxResponse:
        visible = sorted((c for c in self.state.calendars.values() if c.can(principal)), key=lambda c: c.id)
        offset, page = self._page(request, len(visible))
        items = [
            {"kind": "calendar#calendarListEntry", "etag": self.state.etag(), "id": c.id, "summary": c.summary,
             "timeZone": c.time_zone, "accessRole": "owner" if c.owner == principal else "writer",
             **({"primary": True} if c.id == principal else {})}
            for c in visible[offset : offset + page]
        ]  # fmt: skip
        answer: dict[str, Any] = {"kind": "calendar#calendarList", "etag": self.state.etag(), "items": items}
        if offset + page < len(visible):
            answer["nextPageToken"] = encode_token({"o": offset + page})
        else:
            answer["nextSyncToken"] = encode_token({"cl": self.state.seq})
        return SandboxResponse(200, answer)

    def _page(self, request: SandboxRequest, total: int) -> tuple[int, int]:
        page = min(int(request.arg("maxResults") or 250), MAX_PAGE)
        token = request.arg("pageToken")
        data = decode_token(token) if token else {"o": 0}
        offset = int(data.get("o", 0)) if data else 0
        return offset, page

    # events.list
    def m_events_list(self, request, principal, params, body) -> SandboxResponse:
        calendar = self._calendar(principal, params["calendarId"])
        if calendar is None:
            return self.not_found(request)
        sync = request.arg("syncToken")
        if sync is not None:
            clash = [n for n in ("timeMin", "timeMax", "orderBy", "q", "updatedMin", "iCalUID",
                                 "privateExtendedProperty", "sharedExtendedProperty") if n in request.query]  # fmt: skip
            if clash:
                return google_error(400, "invalid", f"Sync token cannot be used with {clash[0]}.")
            data = decode_token(sync)
            if not data or data.get("c") != calendar.id:
                return google_error(400, "invalid", "Invalid sync token value.")
            if int(data.get("s", -1)) < calendar.min_sync_seq:
                return google_error(410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required.",
                                    domain="calendar")  # fmt: skip
            since = int(data["s"])
            chosen = [e for eid, e in calendar.events.items() if calendar.changed[eid] > since]
        else:
            try:
                low = parse_time(request.arg("timeMin")) if request.arg("timeMin") else None
                high = parse_time(request.arg("timeMax")) if request.arg("timeMax") else None
            except ValueError:
                return google_error(400, "invalid", "Bad Request")
            if low and high and high <= low:
                return google_error(400, "timeRangeEmpty", "The specified time range is empty.")
            show_deleted = request.arg("showDeleted") == "true"
            chosen = []
            for event in calendar.events.values():
                if event.get("status") == "cancelled" and not show_deleted:
                    continue
                start, end = self.state.interval(calendar, event)
                if (low and end <= low) or (high and start >= high):
                    continue
                chosen.append(event)
            since = None
        if request.arg("orderBy") == "startTime":
            if request.arg("singleEvents") != "true":
                return google_error(
                    400, "invalid", "The requested ordering is not available for the particular query."
                )
            chosen.sort(key=lambda e: (self.state.interval(calendar, e)[0], e["id"]))
        else:
            chosen.sort(key=lambda e: (calendar.changed[e["id"]], e["id"]))
        token = request.arg("pageToken")
        data = decode_token(token) if token else None
        if token and not data:
            return google_error(400, "invalid", "Invalid page token value.")
        offset = int(data["o"]) if data else 0
        snapshot = int(data["s"]) if data else self.state.seq
        page = min(int(request.arg("maxResults") or 250), MAX_PAGE)
        answer: dict[str, Any] = {
            "kind": "calendar#events", "etag": self.state.etag(), "summary": calendar.summary,
            "updated": rfc3339(dt.datetime.now(dt.UTC)), "timeZone": calendar.time_zone,
            "accessRole": "owner" if calendar.owner == principal else "writer", "defaultReminders": [],
            "items": [dict(e) for e in chosen[offset : offset + page]],
        }  # fmt: skip
        if offset + page < len(chosen):
            answer["nextPageToken"] = encode_token({"o": offset + page, "s": snapshot})
        else:  # the last page: changes after the first page's snapshot come with this token
            answer["nextSyncToken"] = encode_token({"c": calendar.id, "s": snapshot})
        return SandboxResponse(200, answer)

    # events.get
    def m_events_get(self, request, principal, params, body) -> SandboxResponse:
        calendar = self._calendar(principal, params["calendarId"])
        event = calendar.events.get(params["eventId"]) if calendar else None
        if event is None:
            return self.not_found(request)
        if request.headers.get("if-none-match") == event["etag"]:
            return SandboxResponse(304, b"")
        return SandboxResponse(200, dict(event))

    # events.insert
    def m_events_insert(self, request, principal, params, body) -> SandboxResponse:
        calendar = self._calendar(principal, params["calendarId"])
        if calendar is None:
            return self.not_found(request)
        problem = self._event_problem(calendar, body)
        if problem is not None:
            return problem
        event_id = body.get("id")
        if event_id is not None:
            if not isinstance(event_id, str) or not EVENT_ID.match(event_id):
                return google_error(400, "invalid", "Invalid resource id value.")
            if event_id in calendar.events:
                return google_error(409, "duplicate", "The requested identifier already exists.")
        event = self._new_event(calendar, event_id, body, organizer=principal)
        self.state.notify(calendar)
        return SandboxResponse(200, dict(event))

    def _event_problem(self, calendar, body: dict[str, Any]) -> SandboxResponse | None:
        for side in ("start", "end"):
            value = body.get(side)
            if not isinstance(value, dict) or not ("dateTime" in value or "date" in value):
                return google_error(400, "required", f"Missing {side} time.")
        try:
            start, end = self.state.interval(calendar, body)
        except (ValueError, TypeError, KeyError):
            return google_error(400, "invalid", "Invalid start or end time.")
        if end < start:
            return google_error(400, "timeRangeEmpty", "The specified time range is empty.")
        return None

    def _new_event(self, calendar, event_id: str | None, body: dict[str, Any], organizer: str | None = None):
        event_id = event_id or self._fresh_id(calendar)
        now = rfc3339(dt.datetime.now(dt.UTC))
        who = {"email": organizer or calendar.owner}
        event: dict[str, Any] = {
            "kind": "calendar#event", "id": event_id, "status": "confirmed",
            "htmlLink": f"https://www.google.com/calendar/event?eid={event_id}", "created": now, "updated": now,
            "creator": who, "organizer": {"email": calendar.id, "self": True},
            "iCalUID": f"{event_id}@google.com", "sequence": 0,
        }  # fmt: skip
        for name in EVENT_FIELDS:
            if name in body:
                event[name] = body[name]
        event["start"], event["end"] = body["start"], body["end"]
        calendar.events[event_id] = event
        self.state.bump(calendar, event_id)
        event["etag"] = self.state.etag()
        return event

    def _fresh_id(self, calendar) -> str:
        from .sandbox_state import new_event_id

        while True:
            candidate = new_event_id()
            if candidate not in calendar.events:
                return candidate

    def _touch(self, calendar, event: dict[str, Any]) -> None:
        event["updated"] = rfc3339(dt.datetime.now(dt.UTC))
        event["sequence"] = int(event.get("sequence", 0)) + 1
        self.state.bump(calendar, event["id"])
        event["etag"] = self.state.etag()

    def _precondition(self, request: SandboxRequest, event: dict[str, Any]) -> SandboxResponse | None:
        wanted = request.headers.get("if-match")
        if wanted and wanted != "*" and wanted != event["etag"]:
            return google_error(412, "conditionNotMet", "Precondition Failed", location="If-Match",
                                locationType="header")  # fmt: skip
        return None

    # events.update (PUT: the whole event) and events.patch
    def m_events_update(self, request, principal, params, body, *, patch: bool = False) -> SandboxResponse:
        calendar = self._calendar(principal, params["calendarId"])
        event = calendar.events.get(params["eventId"]) if calendar else None
        if event is None:
            return self.not_found(request)
        refused = self._precondition(request, event)
        if refused is not None:
            return refused
        merged = {**event, **body} if patch else {**body}
        problem = self._event_problem(calendar, merged)
        if problem is not None:
            return problem
        if not patch:
            for name in EVENT_FIELDS:
                event.pop(name, None)
            event["status"] = "confirmed"
        for name in (*EVENT_FIELDS, "start", "end"):
            if name in merged:
                event[name] = merged[name]
        self._touch(calendar, event)
        self.state.notify(calendar)
        return SandboxResponse(200, dict(event))

    def m_events_patch(self, request, principal, params, body) -> SandboxResponse:
        return self.m_events_update(request, principal, params, body, patch=True)

    # events.delete
    def m_events_delete(self, request, principal, params, body) -> SandboxResponse:
        calendar = self._calendar(principal, params["calendarId"])
        event = calendar.events.get(params["eventId"]) if calendar else None
        if event is None:
            return self.not_found(request)
        if event.get("status") == "cancelled":
            return google_error(410, "deleted", "Resource has been deleted")
        refused = self._precondition(request, event)
        if refused is not None:
            return refused
        event["status"] = "cancelled"
        self._touch(calendar, event)
        self.state.notify(calendar)
        return SandboxResponse(204, b"")

    # events.watch
    def m_events_watch(self, request, principal, params, body) -> SandboxResponse:
        calendar = self._calendar(principal, params["calendarId"])
        if calendar is None:
            return self.not_found(request)
        channel_id, address = body.get("id"), body.get("address")
        if (
            body.get("type") not in ("web_hook", "webhook")
            or not isinstance(channel_id, str)
            or not channel_id
        ):
            return google_error(400, "required", "Channel id and type web_hook are required.")
        if not isinstance(address, str) or not address.startswith("https://"):
            return google_error(
                400, "push.webhookUrlNotHttps", "WebHook callback must be HTTPS: " + str(address)[:100]
            )
        if channel_id in self.state.channels:
            return google_error(400, "channelIdNotUnique", f"Channel id {channel_id} not unique")
        ttl_ms = 7 * 24 * 3600 * 1000
        asked = int(body.get("expiration") or 0)
        expiration = (
            min(asked, int(time.time() * 1000) + ttl_ms) if asked else int(time.time() * 1000) + ttl_ms
        )
        channel = Channel(channel_id, secrets.token_urlsafe(20), calendar.id, address,
                          str(body.get("token") or ""), expiration, principal)  # fmt: skip
        self.state.channels[channel_id] = channel
        self.state.outbox.append((address, self.state.channel_headers(channel, "sync")))
        return SandboxResponse(200, {
            "kind": "api#channel", "id": channel_id, "resourceId": channel.resource_id,
            "resourceUri": f"https://www.googleapis.com/calendar/v3/calendars/{calendar.id}/events?alt=json",
            "token": channel.token, "expiration": str(expiration),
        })  # fmt: skip

    # channels.stop
    def m_channels_stop(self, request, principal, params, body) -> SandboxResponse:
        channel = self.state.channels.get(str(body.get("id")))
        if channel is None or channel.resource_id != body.get("resourceId") or channel.principal != principal:
            return google_error(
                404, "notFound", f"Channel '{str(body.get('id'))[:64]}' not found for project"
            )
        del self.state.channels[channel.id]
        return SandboxResponse(204, b"")

    # freebusy.query
    def m_freebusy_query(self, request, principal, params, body) -> SandboxResponse:
        try:
            low, high = parse_time(str(body.get("timeMin"))), parse_time(str(body.get("timeMax")))
        except ValueError:
            return google_error(400, "badRequest", "Bad Request")
        if high <= low:
            return google_error(400, "timeRangeEmpty", "The specified time range is empty.")
        items = body.get("items")
        if not isinstance(items, list) or len(items) > 50:
            return google_error(400, "tooManyCalendarsRequested", "Too many calendars requested.")
        calendars: dict[str, Any] = {}
        for item in items:
            wanted = str((item or {}).get("id", ""))
            calendar = self._calendar(principal, wanted)
            if calendar is None:
                calendars[wanted] = {"errors": [{"domain": "global", "reason": "notFound"}], "busy": []}
                continue
            busy = []
            for event in calendar.events.values():
                if event.get("status") == "cancelled" or event.get("transparency") == "transparent":
                    continue
                start, end = self.state.interval(calendar, event)
                if end > low and start < high:
                    busy.append((max(start, low), min(end, high)))
            calendars[wanted] = {"busy": [{"start": rfc3339(s), "end": rfc3339(e)} for s, e in sorted(busy)]}
        return SandboxResponse(200, {"kind": "calendar#freeBusy", "timeMin": rfc3339(low), "timeMax": rfc3339(high),
                                     "calendars": calendars})  # fmt: skip


class DemoGoogleCalendarSandbox(GoogleCalendarSandbox):
    """The sandbox `manage.py run_sandbox` starts: the demo user, its refresh token and an event."""


SANDBOX_CLASS = DemoGoogleCalendarSandbox
