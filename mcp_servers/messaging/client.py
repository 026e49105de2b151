"""Twilio through the official `twilio` library: one tenant's account per client, requests to
TWILIO_API_BASE (the sandbox in tests), timeouts within the call's deadline, Twilio's errors
mapped to MCP error codes.

The library builds every URL on https://api.twilio.com; our HTTP client (the library's own,
subclassed) swaps that origin for settings.TWILIO_API_BASE and sends through the project's
pooled session. No retries: creating a message is not idempotent at Twilio.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from django.conf import settings
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from mcp_core.contracts import ErrorCode, MCPError, OperationContext
from mcp_core.http import pooled_session

logger = logging.getLogger(__name__)

T = TypeVar("T")
TWILIO_ORIGIN = "https://api.twilio.com"
READ_TIMEOUT = 15.0
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("twilio_deadline", default=None)

# Twilio error codes that say the recipient or the request is wrong (not Twilio failing).
RECIPIENT_ERRORS = {
    21211: "to: not a valid phone number for Twilio",
    21408: "to: sending to this region is not enabled on the Twilio account",
    21610: "to: the recipient has unsubscribed from this sender at Twilio (sent STOP)",
    21612: "to: Twilio cannot route a message from this sender to this number",
    21614: "to: not a mobile number that can receive SMS",
    63016: "whatsapp: free-form message outside the 24-hour window; use an approved template",
}


@dataclass(frozen=True)
class TwilioAccount:
    """A tenant's Twilio credentials and senders (the secrets never in repr)."""

    account_sid: str
    auth_token: str
    sender: str
    whatsapp_sender: str

    def __repr__(self) -> str:
        return "TwilioAccount(...)"


class DeadlineHttpClient(TwilioHttpClient):
    """The library's HTTP client on our pooled session, aimed at TWILIO_API_BASE, with a timeout
    never longer than the call has left."""

    def __init__(self, base: str) -> None:
        super().__init__(pool_connections=True, timeout=READ_TIMEOUT)
        self.base = base.rstrip("/")
        self.session = pooled_session("messaging", self.base)

    def request(self, method, url, params=None, data=None, headers=None, auth=None, timeout=None, **kwargs):
        if url.startswith(TWILIO_ORIGIN):
            url = self.base + url[len(TWILIO_ORIGIN) :]
        deadline = _deadline.get()
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise requests.Timeout("the call's deadline passed")
            timeout = min(READ_TIMEOUT, remaining)
        else:
            timeout = READ_TIMEOUT  # the library takes one number (connect and read alike)
        return super().request(method, url, params, data, headers, auth, timeout, **kwargs)

    def log_request(self, kwargs) -> None:  # the library's own logs carry numbers and bodies
        return

    def log_response(self, status_code, response) -> None:
        return


_http_clients: dict[str, DeadlineHttpClient] = {}


def twilio_client(account: TwilioAccount) -> Client:
    """A library client for one account. Cheap to make (the pooled session is shared); the
    empty environment keeps TWILIO_EDGE/TWILIO_REGION variables from redirecting requests."""
    base = settings.TWILIO_API_BASE.rstrip("/")
    http = _http_clients.get(base)
    if http is None:
        http = _http_clients.setdefault(base, DeadlineHttpClient(base))
    return Client(account.account_sid, account.auth_token, http_client=http, environment={})


@contextmanager
def deadline_at(deadline: float | None) -> Iterator[None]:
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


def call(ctx: OperationContext | None, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """One library call under the call's deadline, failures as MCPError. `what` names the step
    for messages and logs (never a credential, never a phone number)."""
    if ctx is not None and ctx.remaining() <= 0:
        raise MCPError(ErrorCode.TIMEOUT, f"messaging: the call's deadline passed before {what}")
    started = time.perf_counter()
    status: Any = "ok"
    try:
        with deadline_at(ctx.deadline if ctx is not None else None):
            return fn(*args, **kwargs)
    except TwilioRestException as exc:
        status = exc.status
        raise map_error(exc, what) from None
    except requests.Timeout:
        status = "timeout"
        raise MCPError(ErrorCode.TIMEOUT, f"twilio did not answer in time ({what})") from None
    except (requests.RequestException, TwilioException) as exc:
        status = type(exc).__name__
        raise MCPError(ErrorCode.UPSTREAM_ERROR, f"twilio cannot be reached ({what})") from None
    finally:
        logger.info(
            "upstream twilio %s -> %s in %.1f ms", what, status, (time.perf_counter() - started) * 1000
        )


def map_error(exc: TwilioRestException, what: str) -> MCPError:
    """Twilio's error (HTTP status plus its numeric code) -> an MCP error code. The text is
    Twilio's own message, which names no credential; 401/403 do not even pass that on."""
    code = exc.code
    details: dict[str, Any] = {"upstream_status": exc.status, "twilio_code": code}
    text = (exc.msg or "").strip()[:300] or f"HTTP {exc.status}"
    if exc.status == 401:
        return MCPError(
            ErrorCode.UPSTREAM_ERROR,
            f"twilio rejected the account SID or auth token ({what}, 401)",
            details=details,
        )
    if exc.status == 403:
        return MCPError(
            ErrorCode.UPSTREAM_ERROR, f"twilio: the account may not do this ({what}, 403)", details=details
        )
    if exc.status == 429:
        return MCPError(
            ErrorCode.RATE_LIMITED, f"twilio: rate limited ({what})", details=details, retry_after=1.0
        )
    if exc.status == 404:
        return MCPError(ErrorCode.NOT_FOUND, f"twilio: {text}", details=details)
    if code in RECIPIENT_ERRORS:
        details["field"] = "to"
        return MCPError(
            ErrorCode.VALIDATION_ERROR, f"{RECIPIENT_ERRORS[code]} (Twilio {code})", details=details
        )
    if exc.status is not None and 400 <= exc.status < 500:
        return MCPError(ErrorCode.VALIDATION_ERROR, f"twilio refused it ({what}): {text}", details=details)
    return MCPError(
        ErrorCode.UPSTREAM_ERROR, f"twilio failed ({what}, {exc.status}): {text}", details=details
    )
