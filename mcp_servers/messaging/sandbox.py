"""A Twilio sandbox: the Programmable Messaging part of API 2010-04-01, as the official `twilio`
library and Twilio's OpenAPI description (reference/specs/twilio_api_v2010.json) have it.

- Basic auth with the account SID as user and the auth token as password; the SID in the
  path must be the authenticated account (401 with Twilio's error body 20003 otherwise).
- POST .../Messages.json takes form fields only (To; From or MessagingServiceSid; Body or
  ContentSid + ContentVariables; StatusCallback) and answers 201 with the Message resource,
  status "queued"; refusals carry Twilio's error codes (21604, 21603, 21602, 21211, 21610, …).
- A message moves queued -> sending -> sent -> delivered (or undelivered/failed for numbers
  told to fail) when `advance()` is called, or by itself with `auto_advance`; each change is
  POSTed to its StatusCallback, form-encoded and signed with X-Twilio-Signature.
- GET .../Messages/{Sid}.json and .../Messages.json (To, From, DateSent filters; PageSize,
  Page, PageToken paging with next_page_uri), GET /2010-04-01/Accounts/{Sid}.json.
- `send_inbound()` delivers a signed inbound message (SMS or WhatsApp) to a URL, and opens the
  WhatsApp 24-hour window for that customer; STOP/START from a customer blocks and unblocks
  that sender as Twilio's Advanced Opt-Out does (21610).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
import secrets
import threading
import time
from collections.abc import Callable
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

import requests
from twilio.request_validator import RequestValidator

from mcp_core.sandbox import SandboxRequest, SandboxResponse, SandboxServer, route

API = "/2010-04-01"
DEMO_ACCOUNT_SID = "AC" + "d" * 32
DEMO_AUTH_TOKEN = "sandbox_demo_auth_token_0123456789"  # noqa: S105 - the sandbox's demo credential
DEMO_SENDER = "+4930123456789"
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_ACCOUNT = r"(?P<account>AC[0-9a-fA-F]{32})"
_GSM = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")  # fmt: skip
STOP_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"}
START_WORDS = {"START", "YES", "UNSTOP"}
NEXT_STATUS = {"queued": "sending", "sending": "sent", "sent": "delivered"}
PRICE = {"sms": "-0.07900", "whatsapp": "-0.00500"}
Sink = Callable[[str, dict[str, str], bytes], Any]


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def rfc2822(when: dt.datetime | None) -> str | None:
    return format_datetime(when) if when else None


def twilio_error(status: int, code: int, message: str) -> SandboxResponse:
    """Twilio's error body: code, message, more_info, status."""
    return SandboxResponse(
        status,
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


def sign(url: str, params: dict[str, str], auth_token: str) -> str:
    """X-Twilio-Signature for a form POST to `url` (the library's own computation)."""
    return RequestValidator(auth_token).compute_signature(url, params)


def signed_request(url: str, params: dict[str, str], auth_token: str) -> tuple[dict[str, str], bytes]:
    headers = {
        "X-Twilio-Signature": sign(url, params, auth_token),
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        "User-Agent": "TwilioProxy/1.1",
    }
    return headers, urlencode(params).encode()


def segments(body: str) -> int:
    if not body:
        return 1
    gsm = all(ch in _GSM for ch in body)
    single, multi = (160, 153) if gsm else (70, 67)
    return 1 if len(body) <= single else math.ceil(len(body) / multi)


class TwilioSandbox(SandboxServer):
    """A stateful Twilio Messaging fake: accounts, messages, opt-outs, signed callbacks."""

    service = "messaging"

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, demo: bool = True, auto_advance: float | None = None
    ) -> None:
        super().__init__(host, port)
        self.auto_advance = auto_advance  # seconds between lifecycle steps; None: only advance()
        self.sink: Sink | None = None  # tests route callbacks here instead of HTTP
        self.delivered_callbacks: list[tuple[str, dict[str, str]]] = []
        self.reset(demo=demo)

    def reset(self, *, demo: bool = False) -> None:
        with self.lock:
            self.accounts: dict[str, dict[str, Any]] = {}
            self.messages: dict[str, dict[str, Any]] = {}
            self.order: list[str] = []
            self.opted_out: set[tuple[str, str, str]] = set()  # (account, sender, customer)
            self.whatsapp_inbound: dict[tuple[str, str], float] = {}  # (account, customer) -> time
            self.fail_numbers: dict[str, tuple[str, int]] = {}  # customer -> (final status, error code)
            self.templates: set[str] = set()
            self.request_log.clear()
            self.delivered_callbacks.clear()
            self.faults.clear()
        if demo:
            self.add_account(DEMO_ACCOUNT_SID, DEMO_AUTH_TOKEN, friendly_name="AskPro demo")

    # --- state helpers (tests and demo) ---
    def add_account(self, sid: str | None = None, token: str | None = None, *, friendly_name: str = "Sandbox account",
                    status: str = "active", price_unit: str = "USD") -> tuple[str, str]:  # fmt: skip
        sid = sid or new_sid("AC")
        token = token or secrets.token_hex(16)
        with self.lock:
            self.accounts[sid] = {"token": token, "friendly_name": friendly_name, "status": status,
                                  "price_unit": price_unit, "created": dt.datetime.now(dt.UTC)}  # fmt: skip
        return sid, token

    def add_template(self, content_sid: str | None = None) -> str:
        content_sid = content_sid or new_sid("HX")
        with self.lock:
            self.templates.add(content_sid)
        return content_sid

    def message(self, sid: str) -> dict[str, Any]:
        with self.lock:
            return dict(self.messages[sid])

    # --- auth ---
    def _authenticate(self, request: SandboxRequest) -> str | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        account = self.accounts.get(user)
        if account is None or not secrets.compare_digest(account["token"], password):
            return None
        return user

    def _guard(self, request: SandboxRequest) -> SandboxResponse | None:
        user = self._authenticate(request)
        if user is None or user != request.params.get("account"):
            return SandboxResponse(
                401,
                {
                    "code": 20003,
                    "message": "Authenticate",
                    "more_info": "https://www.twilio.com/docs/errors/20003",
                    "status": 401,
                },  # fmt: skip
                {"WWW-Authenticate": 'Basic realm="Twilio API"'},
            )
        return None

    def fault_body(self, status: int) -> Any:
        code = {429: 20429, 500: 20500, 503: 20503}.get(status, 20001)
        return twilio_error(status, code, f"injected fault {status}").body

    def not_found(self, request: SandboxRequest) -> SandboxResponse:
        return twilio_error(404, 20404, f"The requested resource {request.path} was not found")

    # --- resources ---
    def _resource(self, m: dict[str, Any]) -> dict[str, Any]:
        account = self.accounts[m["account_sid"]]
        final = m["status"] in ("delivered", "undelivered", "failed", "read")
        uri = f"{API}/Accounts/{m['account_sid']}/Messages/{m['sid']}.json"
        return {
            "account_sid": m["account_sid"],
            "api_version": "2010-04-01",
            "body": m["body"],
            "date_created": rfc2822(m["created"]),
            "date_sent": rfc2822(m.get("sent")),
            "date_updated": rfc2822(m["updated"]),
            "direction": m["direction"],
            "error_code": m.get("error_code"),
            "error_message": m.get("error_message"),
            "from": m["from"],
            "messaging_service_sid": m.get("messaging_service_sid"),
            "num_media": "0",
            "num_segments": str(m["segments"]),
            "price": m["price"] if final else None,
            "price_unit": account["price_unit"] if final else None,
            "sid": m["sid"],
            "status": m["status"],
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": m["to"],
            "uri": uri,
        }

    @route("GET", rf"{API}/Accounts/(?P<sid>AC[0-9a-fA-F]{{32}})\.json")
    def get_account(self, request: SandboxRequest) -> SandboxResponse:
        request.params["account"] = request.params["sid"]
        refused = self._guard(request)
        if refused:
            return refused
        sid = request.params["sid"]
        a = self.accounts[sid]
        return SandboxResponse(200, {
            "auth_token": "[Redacted]", "date_created": rfc2822(a["created"]), "date_updated": rfc2822(a["created"]),
            "friendly_name": a["friendly_name"], "owner_account_sid": sid, "sid": sid, "status": a["status"],
            "subresource_uris": {"messages": f"{API}/Accounts/{sid}/Messages.json"}, "type": "Full",
            "uri": f"{API}/Accounts/{sid}.json",
        })  # fmt: skip

    @route("POST", rf"{API}/Accounts/{_ACCOUNT}/Messages\.json")
    def create_message(self, request: SandboxRequest) -> SandboxResponse:
        refused = self._guard(request)
        if refused:
            return refused
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return twilio_error(400, 20001, "Content-Type must be application/x-www-form-urlencoded")
        form = {k: v[-1] for k, v in request.form().items()}
        account = request.params["account"]
        to, sender, service = form.get("To", ""), form.get("From", ""), form.get("MessagingServiceSid", "")
        body, content = form.get("Body", ""), form.get("ContentSid", "")
        if not to:
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        if not sender and not service:
            return twilio_error(400, 21603, "A 'From' phone number is required.")
        if service and not re.fullmatch(r"MG[0-9a-fA-F]{32}", service):
            return twilio_error(400, 21701, "The Messaging Service Sid is invalid.")
        if not body and not content and not form.get("MediaUrl"):
            return twilio_error(400, 21602, "Message body is required.")
        if len(body) > 1600:
            return twilio_error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        whatsapp = to.startswith("whatsapp:")
        number = to.removeprefix("whatsapp:")
        if not _E164.match(number):
            return twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if sender and not _E164.match(sender.removeprefix("whatsapp:")):
            return twilio_error(
                400, 21212, f"The 'From' number {sender} is not a valid phone number or shortcode."
            )
        if whatsapp and sender and not sender.startswith("whatsapp:"):
            return twilio_error(400, 63007, "Twilio could not find a Channel with the specified From address")
        variables: dict[str, Any] = {}
        if content:
            if content not in self.templates:
                return twilio_error(400, 21655, "The ContentSid is Invalid.")
            try:
                variables = json.loads(form.get("ContentVariables") or "{}")
            except ValueError:
                variables = None  # type: ignore[assignment]
            if not isinstance(variables, dict):
                return twilio_error(400, 21656, "The ContentVariables Parameter is invalid.")
        callback = form.get("StatusCallback", "")
        if callback and not callback.startswith(("http://", "https://")):
            return twilio_error(400, 21609, "The StatusCallback URL is not a valid URL.")
        key = (account, service or sender.removeprefix("whatsapp:"), number)
        if key in self.opted_out:
            return twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")
        now = dt.datetime.now(dt.UTC)
        text = body or f"[template {content}] " + json.dumps(variables, sort_keys=True)
        message = {
            "sid": new_sid("SM"), "account_sid": account, "to": to, "from": sender or None,
            "messaging_service_sid": service or None, "body": text, "status": "queued",
            "direction": "outbound-api", "created": now, "updated": now, "sent": None,
            "segments": segments(text), "callback": callback, "channel": "whatsapp" if whatsapp else "sms",
            "content_sid": content or None, "error_code": None, "error_message": None,
        }  # fmt: skip
        message["price"] = f"{float(PRICE[message['channel']]) * message['segments']:.5f}"
        # WhatsApp accepts free text only inside the 24-hour window; outside it fails with 63016.
        if whatsapp and not content:
            opened = self.whatsapp_inbound.get((account, number))
            if opened is None or time.time() - opened > 24 * 3600:
                message["fails_with"] = ("failed", 63016)
        with self.lock:
            self.messages[message["sid"]] = message
            self.order.append(message["sid"])
        if self.auto_advance is not None:
            threading.Thread(target=self._run_lifecycle, args=(message["sid"],), daemon=True).start()
        return SandboxResponse(201, self._resource(message))

    @route("GET", rf"{API}/Accounts/{_ACCOUNT}/Messages/(?P<sid>(SM|MM)[0-9a-fA-F]{{32}})\.json")
    def get_message(self, request: SandboxRequest) -> SandboxResponse:
        refused = self._guard(request)
        if refused:
            return refused
        with self.lock:
            m = self.messages.get(request.params["sid"])
            if m is None or m["account_sid"] != request.params["account"]:
                return self.not_found(request)
            return SandboxResponse(200, self._resource(m))

    @route("GET", rf"{API}/Accounts/{_ACCOUNT}/Messages\.json")
    def list_messages(self, request: SandboxRequest) -> SandboxResponse:
        refused = self._guard(request)
        if refused:
            return refused
        account = request.params["account"]
        try:
            size = int(request.arg("PageSize", "50"))
            page = int(request.arg("Page", "0"))
        except ValueError:
            return twilio_error(400, 20001, "PageSize and Page must be integers")
        if not 1 <= size <= 1000 or page < 0:
            return twilio_error(400, 20001, "PageSize must be between 1 and 1000")
        to, sender = request.arg("To"), request.arg("From")
        with self.lock:
            rows = [
                self.messages[s] for s in reversed(self.order) if self.messages[s]["account_sid"] == account
            ]
            rows = [
                m for m in rows if (to is None or m["to"] == to) and (sender is None or m["from"] == sender)
            ]
            token = request.arg("PageToken")
            start = 0
            if token:
                try:
                    start = int(token.removeprefix("PA"))
                except ValueError:
                    return twilio_error(400, 20001, "Invalid PageToken")
            chunk = rows[start : start + size]
            base = f"{API}/Accounts/{account}/Messages.json"
            filters = {k: v for k, v in (("To", to), ("From", sender)) if v is not None}
            more = start + size < len(rows)
            next_uri = f"{base}?{urlencode({**filters, 'PageSize': size, 'Page': page + 1, 'PageToken': f'PA{start + size}'})}" if more else None  # fmt: skip
            prev_uri = f"{base}?{urlencode({**filters, 'PageSize': size, 'Page': page - 1, 'PageToken': f'PA{max(0, start - size)}'})}" if start else None  # fmt: skip
            return SandboxResponse(200, {
                "first_page_uri": f"{base}?{urlencode({**filters, 'PageSize': size, 'Page': 0})}",
                "end": start + len(chunk) - 1 if chunk else start, "previous_page_uri": prev_uri,
                "messages": [self._resource(m) for m in chunk], "uri": f"{base}?{urlencode({**filters, 'PageSize': size, 'Page': page})}",
                "page_size": size, "start": start, "next_page_uri": next_uri, "page": page,
            })  # fmt: skip

    # --- lifecycle and callbacks ---
    def _run_lifecycle(self, sid: str) -> None:
        while self.advance(sid) is not None:
            time.sleep(self.auto_advance or 0)

    def advance(self, sid: str, to: str | None = None) -> str | None:
        """Move a message one step (or straight `to` a status); POST its status callback. The
        new status, or None when it was already final."""
        with self.lock:
            m = self.messages[sid]
            current = m["status"]
            if to is None:
                to = NEXT_STATUS.get(current)
                if to is None:
                    return None
                failing = m.get("fails_with") or self.fail_numbers.get(m["to"].removeprefix("whatsapp:"))
                if to == "delivered" and failing:
                    to, m["error_code"] = failing
                    m["error_message"] = (
                        "Message failed" if to == "failed" else "Unreachable destination handset"
                    )
            m["status"] = to
            m["updated"] = dt.datetime.now(dt.UTC)
            if to == "sent":
                m["sent"] = m["updated"]
            callback, token = m["callback"], self.accounts[m["account_sid"]]["token"]
            params = {
                "MessageSid": sid, "SmsSid": sid, "AccountSid": m["account_sid"], "From": m["from"] or "",
                "To": m["to"], "MessageStatus": to, "SmsStatus": to, "ApiVersion": "2010-04-01",
            }  # fmt: skip
            if m.get("messaging_service_sid"):
                params["MessagingServiceSid"] = m["messaging_service_sid"]
            if m.get("error_code"):
                params["ErrorCode"] = str(m["error_code"])
        if callback:
            self.post_signed(callback, params, token)
        return to

    def callback_params(self, sid: str, status: str) -> dict[str, str]:
        """The form of a status callback for this message and status (for tests and benches)."""
        with self.lock:
            m = self.messages[sid]
            return {"MessageSid": sid, "SmsSid": sid, "AccountSid": m["account_sid"], "From": m["from"] or "",
                    "To": m["to"], "MessageStatus": status, "SmsStatus": status, "ApiVersion": "2010-04-01"}  # fmt: skip

    def post_signed(self, url: str, params: dict[str, str], token: str) -> Any:
        headers, body = signed_request(url, params, token)
        with self.lock:
            self.delivered_callbacks.append((url, dict(params)))
        if self.sink is not None:
            return self.sink(url, headers, body)
        try:
            return requests.post(url, data=body, headers=headers, timeout=5)
        except requests.RequestException:
            return None  # Twilio logs a failed callback (11200) and moves on

    def send_inbound(self, url: str, account: str, sender: str, customer: str, body: str, *,
                     whatsapp: bool = False) -> Any:  # fmt: skip
        """A customer's message to `sender`, delivered to `url` as Twilio's incoming-message
        webhook (signed). STOP/START change the sender's opt-out list as Twilio does."""
        sid = new_sid("SM")
        prefix = "whatsapp:" if whatsapp else ""
        word = body.strip().upper()
        with self.lock:
            token = self.accounts[account]["token"]
            if whatsapp:
                self.whatsapp_inbound[(account, customer)] = time.time()
            if word in STOP_WORDS:
                self.opted_out.add((account, sender, customer))
            elif word in START_WORDS:
                self.opted_out.discard((account, sender, customer))
            now = dt.datetime.now(dt.UTC)
            self.messages[sid] = {"sid": sid, "account_sid": account, "to": prefix + sender, "from": prefix + customer,
                                  "messaging_service_sid": None, "body": body, "status": "received",
                                  "direction": "inbound", "created": now, "updated": now, "sent": now,
                                  "segments": segments(body), "callback": "", "channel": "whatsapp" if whatsapp else "sms",
                                  "price": "-0.00790", "error_code": None, "error_message": None}  # fmt: skip
            self.order.append(sid)
        params = {
            "ToCountry": "DE", "SmsMessageSid": sid, "NumMedia": "0", "SmsSid": sid, "SmsStatus": "received",
            "Body": body, "To": prefix + sender, "NumSegments": "1", "MessageSid": sid, "AccountSid": account,
            "From": prefix + customer, "ApiVersion": "2010-04-01",
        }  # fmt: skip
        return self.post_signed(url, params, token)


def parse_form(body: bytes) -> dict[str, str]:
    """A form body's fields (last value of each); undecodable bytes become U+FFFD."""
    return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}


# The sandbox class `manage.py run_sandbox` starts for this service (lifecycle steps every second).
class DemoTwilioSandbox(TwilioSandbox):
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port, demo=True, auto_advance=1.0)


SANDBOX_CLASS = DemoTwilioSandbox
