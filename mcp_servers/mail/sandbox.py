"""An SMTP sandbox: a real SMTP server on 127.0.0.1 (aiosmtpd) that keeps every message it
accepts, so tests read what a customer would receive (headers, both parts, the invitation)
instead of a mock, and that sends the tracking webhooks a provider would (Postmark's shape).

- EHLO/MAIL/RCPT/DATA as RFC 5321 has them; AUTH PLAIN and LOGIN over plain text (a local
  test server: no TLS), required once an account is added; 535 5.7.8 for a wrong password.
- `reject(address, code)` refuses a recipient at RCPT (550 5.1.1 unknown user, say);
  `fail_next(code, stage)` answers the next MAIL, RCPT or DATA with a failure (451 4.3.0).
- `tracking_event(message, kind)` builds Postmark's webhook payload for an accepted message
  (Delivery, Bounce with Type HardBounce/SoftBounce, SpamComplaint): MessageID is the
  message's Message-ID (as a relay keeps it) and Metadata comes from its X-PM-Metadata-*
  headers, as Postmark's SMTP service takes them. `deliver()` POSTs one with basic auth to a
  URL (or to `sink`, a callable tests route into Django's test client).
"""

from __future__ import annotations

import email
import email.policy
import json
import logging
import secrets
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import requests
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from django.utils import timezone

from mcp_core.sandbox import SandboxServer

from .webhooks import sign_webhook

# aiosmtpd logs every SMTP command at INFO (AUTH masked) and a deprecation of its own API at
# WARNING on every login: the sandbox keeps them quiet.
logging.getLogger("mail.log").setLevel(logging.ERROR)

DEMO_USERNAME = "sandbox"
DEMO_PASSWORD = "sandbox-demo-password"  # noqa: S105 - the sandbox's demo credential
Sink = Callable[[str, dict[str, str], bytes], Any]


@dataclass
class Received:
    """One accepted message: the envelope, who logged in, and the parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    auth_user: str | None
    message: EmailMessage = field(init=False)

    def __post_init__(self) -> None:
        self.message = email.message_from_bytes(self.raw, policy=email.policy.default)  # type: ignore[assignment]

    def header(self, name: str) -> str | None:
        value = self.message[name]
        return None if value is None else str(value).strip()

    def part(self, content_type: str) -> EmailMessage | None:
        for part in self.message.walk():
            if part.get_content_type() == content_type:
                return part
        return None

    def text(self) -> str:
        return self.part("text/plain").get_content()

    def html(self) -> str:
        return self.part("text/html").get_content()

    def ics(self) -> str | None:
        found = self.part("text/calendar")
        return None if found is None else found.get_content()

    @property
    def message_id(self) -> str:
        return (self.header("Message-ID") or "").strip().strip("<>")

    def metadata(self) -> dict[str, str]:
        prefix = "x-pm-metadata-"
        return {k[len(prefix) :]: str(v) for k, v in self.message.items() if k.lower().startswith(prefix)}


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class _Handler:
    def __init__(self, sandbox: SmtpSandbox) -> None:
        self.sandbox = sandbox

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        failure = self.sandbox._failure("MAIL")
        if failure:
            return failure
        if self.sandbox.accounts and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        failure = self.sandbox._failure("RCPT")
        if failure:
            return failure
        code = self.sandbox.rejected.get(address.lower())
        if code:
            return f"{code} 5.1.1 <{address}>: recipient address rejected: user unknown"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        failure = self.sandbox._failure("DATA")
        if failure:
            return failure
        user = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        received = Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content), user)
        with self.sandbox.lock:
            self.sandbox.messages.append(received)
        return "250 2.0.0 OK: queued"


class SmtpSandbox(SandboxServer):
    """A real SMTP server on 127.0.0.1 standing in for a tenant's mail server or provider."""

    service = "email"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, demo: bool = True) -> None:
        super().__init__(host, port)
        self.sink: Sink | None = None
        self._controller: Controller | None = None
        self._port = 0
        self.reset(demo=demo)

    def reset(self, *, demo: bool = False) -> None:
        with self.lock:
            self.messages: list[Received] = []
            self.accounts: dict[str, str] = {}
            self.rejected: dict[str, int] = {}
            self.failures: list[tuple[str, str]] = []  # (stage, reply)
            self.logins: list[tuple[str, bool]] = []
            if demo:
                self.accounts[DEMO_USERNAME] = DEMO_PASSWORD

    # --- lifecycle ---
    @property
    def port(self) -> int:
        assert self._controller is not None, "sandbox not started"
        return self._port

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def describe(self) -> str:
        return f"SMTP, log in as {DEMO_USERNAME} / {DEMO_PASSWORD}; no TLS"

    def start(self) -> SmtpSandbox:
        self._port = self.requested_port or free_port(self.host)
        self._controller = Controller(
            _Handler(self),
            hostname=self.host,
            port=self._port,
            auth_require_tls=False,
            authenticator=self._authenticate,
            ident="AskPro SMTP sandbox",
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    # --- state (tests and demo) ---
    def add_account(self, username: str | None = None, password: str | None = None) -> tuple[str, str]:
        username = username or f"user-{secrets.token_hex(4)}"
        password = password or secrets.token_urlsafe(16)
        with self.lock:
            self.accounts[username] = password
        return username, password

    def reject(self, address: str, code: int = 550) -> None:
        with self.lock:
            self.rejected[address.lower()] = code

    def fail_next(self, code: int = 451, stage: str = "DATA", text: str = "4.3.0 temporary failure, try again later") -> None:  # fmt: skip
        with self.lock:
            self.failures.append((stage.upper(), f"{code} {text}"))

    def _failure(self, stage: str) -> str | None:
        with self.lock:
            for i, (when, reply) in enumerate(self.failures):
                if when == stage:
                    del self.failures[i]
                    return reply
        return None

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        with self.lock:
            ok = user in self.accounts and secrets.compare_digest(self.accounts[user], password)
            self.logins.append((user, ok))
        # A failure is left to aiosmtpd (handled=False), which answers 535 5.7.8.
        return AuthResult(success=ok, handled=ok, auth_data=auth_data if ok else None)

    def received(self, to: str | None = None) -> list[Received]:
        with self.lock:
            return [m for m in self.messages if to is None or to.lower() in (r.lower() for r in m.rcpt_tos)]

    # --- tracking webhooks (Postmark's payloads) ---
    def tracking_event(self, message: Received, kind: str, *, recipient: str | None = None) -> dict[str, Any]:
        """Postmark's webhook body for `message`: "delivery", "hard_bounce", "soft_bounce" or
        "complaint"."""
        to = recipient or message.rcpt_tos[0]
        now = timezone.now().isoformat().replace("+00:00", "Z")
        common = {"MessageID": message.message_id, "Metadata": message.metadata(), "MessageStream": "outbound",
                  "ServerID": 23, "Tag": ""}  # fmt: skip
        if kind == "delivery":
            return {"RecordType": "Delivery", "Recipient": to, "DeliveredAt": now,
                    "Details": "smtp;250 2.0.0 OK", **common}  # fmt: skip
        bounce_id = int(uuid.uuid4().int % 10**15)
        if kind in ("hard_bounce", "soft_bounce"):
            hard = kind == "hard_bounce"
            return {
                "RecordType": "Bounce", "ID": bounce_id, "Type": "HardBounce" if hard else "SoftBounce",
                "TypeCode": 1 if hard else 4096, "Name": "Hard bounce" if hard else "Soft bounce",
                "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found)."
                if hard else "The server could not temporarily deliver your message (ex: Message is delayed due to network troubles).",
                "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist." if hard else "smtp;421 4.4.2 timeout",
                "Email": to, "From": message.mail_from, "BouncedAt": now, "Inactive": hard,
                "CanActivate": True, "Subject": message.header("Subject") or "", **common,
            }  # fmt: skip
        if kind == "complaint":
            return {
                "RecordType": "SpamComplaint", "ID": bounce_id, "Type": "SpamComplaint", "TypeCode": 512,
                "Name": "Spam complaint", "Description": "The subscriber explicitly marked this message as spam.",
                "Details": "Test spam complaint details", "Email": to, "From": message.mail_from,
                "BouncedAt": now, "Inactive": True, "CanActivate": False, "Subject": message.header("Subject") or "",
                **common,
            }  # fmt: skip
        raise ValueError(f"unknown tracking event kind {kind!r}")

    def deliver(self, url: str, payload: dict[str, Any], secret: str) -> Any:
        """POST one tracking event to `url` with basic auth (through `sink` when set)."""
        body = json.dumps(payload).encode()
        headers = sign_webhook(body, secret)
        if self.sink is not None:
            return self.sink(url, headers, body)
        return requests.post(url, data=body, headers=headers, timeout=10)


SANDBOX_CLASS = SmtpSandbox
