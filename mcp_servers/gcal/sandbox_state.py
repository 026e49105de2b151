"""The Google Calendar sandbox's state: principals (OAuth users and service accounts), the
calendars they may reach, events with a change sequence (sync tokens are positions in it),
push channels and the notifications owed to them. No HTTP here; sandbox.py serves it."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

# Google's event ids: base32hex characters (a-v, 0-9), 5 to 1024 of them.
EVENT_ID = re.compile(r"^[a-v0-9]{5,1024}$")


def rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> dt.datetime:
    """An RFC 3339 timestamp with a mandatory offset (what Google accepts); ValueError else."""
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("no time zone offset")
    return value


def new_event_id() -> str:
    alphabet = "abcdefghijklmnopqrstuv0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(26))


def encode_token(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_token(token: str) -> dict[str, Any] | None:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


@dataclass
class Calendar:
    id: str
    summary: str
    time_zone: str
    owner: str
    readers: set[str] = field(default_factory=set)  # principals it is shared with (writers too)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> resource
    changed: dict[str, int] = field(default_factory=dict)  # id -> sequence number of its last change
    min_sync_seq: int = 0  # sync tokens older than this answer 410 Gone

    def can(self, principal: str) -> bool:
        return principal == self.owner or principal in self.readers


@dataclass
class Channel:
    id: str
    resource_id: str
    calendar_id: str
    address: str
    token: str
    expiration_ms: int
    principal: str
    message_number: int = 0


class CalendarState:
    """Everything the sandbox holds, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.seq = 0
            self.users: set[str] = set()
            self.service_accounts: dict[str, dict[str, Any]] = {}  # email -> {public_key, delegation}
            self.refresh_tokens: dict[str, str] = {}  # refresh token -> principal
            self.codes: dict[str, tuple[str, str]] = {}  # authorization code -> (principal, redirect_uri)
            self.access_tokens: dict[str, tuple[str, float]] = {}  # token -> (principal, expires)
            self.calendars: dict[str, Calendar] = {}
            self.channels: dict[str, Channel] = {}
            self.outbox: list[tuple[str, dict[str, str]]] = []  # (address, headers) not yet sent
            self.consent_user: str | None = None
            self.token_requests = 0

    # --- principals ---
    def add_user(self, email: str, *, time_zone: str = "Europe/Berlin") -> str:
        """An OAuth user with a primary calendar (its id is the address); returns a refresh token."""
        with self.lock:
            self.users.add(email)
            self.calendars.setdefault(email, Calendar(email, email, time_zone, email))
            token = "1//" + secrets.token_urlsafe(32)
            self.refresh_tokens[token] = email
            return token

    def add_service_account(self, email: str, *, delegation: bool = False) -> dict[str, Any]:
        """A service account and its JSON key (as Google's console issues it)."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        key_id = secrets.token_hex(20)
        with self.lock:
            self.service_accounts[email] = {
                "public_key": key.public_key(),
                "key_id": key_id,
                "delegation": delegation,
            }
        return {
            "type": "service_account",
            "project_id": "askpro-sandbox",
            "private_key_id": key_id,
            "private_key": pem,
            "client_email": email,
            "client_id": str(secrets.randbelow(10**20)),
            "token_uri": "https://oauth2.googleapis.com/token",
        }

    def add_calendar(self, owner: str, calendar_id: str | None = None, *, summary: str = "",
                     time_zone: str = "Europe/Berlin", shared_with: tuple[str, ...] = ()) -> str:  # fmt: skip
        calendar_id = calendar_id or f"{secrets.token_hex(8)}@group.calendar.google.com"
        with self.lock:
            self.calendars[calendar_id] = Calendar(
                calendar_id, summary or calendar_id, time_zone, owner, set(shared_with)
            )
        return calendar_id

    def issue_access_token(self, principal: str, lifetime_s: float = 3600.0) -> str:
        token = "ya29." + secrets.token_urlsafe(32)
        with self.lock:
            self.access_tokens[token] = (principal, time.time() + lifetime_s)
            self.token_requests += 1
        return token

    def principal_for(self, token: str) -> str | None:
        with self.lock:
            found = self.access_tokens.get(token)
        if found is None or found[1] < time.time():
            return None
        return found[0]

    # --- events ---
    def bump(self, calendar: Calendar, event_id: str) -> int:
        self.seq += 1
        calendar.changed[event_id] = self.seq
        return self.seq

    def interval(self, calendar: Calendar, event: dict[str, Any]) -> tuple[dt.datetime, dt.datetime]:
        return self.when(calendar, event["start"]), self.when(calendar, event["end"])

    def when(self, calendar: Calendar, value: dict[str, Any]) -> dt.datetime:
        if "dateTime" in value:
            return parse_time(value["dateTime"])
        day = dt.date.fromisoformat(value["date"])
        return dt.datetime.combine(day, dt.time(), ZoneInfo(calendar.time_zone))

    def etag(self) -> str:
        return f'"{3_400_000_000_000_000 + self.seq * 1000}"'

    def notify(self, calendar: Calendar, state: str = "exists") -> None:
        """Owe every open channel on the calendar a notification (sent by the sandbox)."""
        now_ms = int(time.time() * 1000)
        for channel in self.channels.values():
            if channel.calendar_id == calendar.id and channel.expiration_ms > now_ms:
                self.outbox.append((channel.address, self.channel_headers(channel, state)))

    def channel_headers(self, channel: Channel, state: str) -> dict[str, str]:
        channel.message_number += 1
        expires = dt.datetime.fromtimestamp(channel.expiration_ms / 1000, dt.UTC)
        return {
            "X-Goog-Channel-ID": channel.id,
            "X-Goog-Channel-Token": channel.token,
            "X-Goog-Channel-Expiration": expires.strftime("%a, %d %b %Y %H:%M:%S GMT"),
            "X-Goog-Resource-ID": channel.resource_id,
            "X-Goog-Resource-URI": (
                f"https://www.googleapis.com/calendar/v3/calendars/{channel.calendar_id}/events?alt=json"
            ),
            "X-Goog-Resource-State": state,
            "X-Goog-Message-Number": str(channel.message_number),
        }
