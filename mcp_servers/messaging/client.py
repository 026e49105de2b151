"""Twilio through the official `twilio` library: one tenant's account per client, requests to
TWILIO_API_BASE (the sandbox in tests), timeouts within the call's deadline, Twilio's errors
mapped to MCP error codes.

The library builds every URL on https://api.twilio.com; our HTTP clients (the library's own,
subclassed) swap that origin for settings.TWILIO_API_BASE. One message at a time goes through
the project's pooled requests session; a batch (`create_many`) through the library's
asynchronous interface on one aiohttp session, a few kept-alive connections with many requests
in flight. No retries: creating a message is not idempotent at Twilio.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

import aiohttp
import requests
from django.conf import settings
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http import AsyncHttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
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


class BatchHttpClient(AsyncHttpClient):
    """The library's asynchronous HTTP client interface on one aiohttp session (one batch's),
    aimed at TWILIO_API_BASE, each request's timeout within the batch's deadline. Unlike the
    library's own async client it logs nothing (its log lines carry numbers and headers)."""

    def __init__(self, base: str, session: aiohttp.ClientSession, deadline: float) -> None:
        super().__init__(logger=logger, is_async=True, timeout=READ_TIMEOUT)
        self.base = base.rstrip("/")
        self.session = session
        self.deadline = deadline
        # The same proxy the pooled requests session uses for this origin (none: direct).
        self.proxy = requests.utils.get_environ_proxies(self.base).get(self.base.split(":", 1)[0])

    async def request(self, method, url, params=None, data=None, headers=None, auth=None, timeout=None,
                      allow_redirects=False) -> Response:  # fmt: skip
        if url.startswith(TWILIO_ORIGIN):
            url = self.base + url[len(TWILIO_ORIGIN) :]
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        headers = dict(headers or {})
        if auth is not None:
            headers["Authorization"] = aiohttp.encode_basic_auth(auth[0], auth[1])
        if isinstance(data, dict):
            # Form-encoded here, as the library's synchronous client (requests) does, lists as
            # repeated fields: aiohttp's own form encoding goes through a multipart writer first
            # and cost a sixth of each request's client time.
            data = urlencode(data, doseq=True).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        async with self.session.request(
            method.upper(),
            url,
            params=params,
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=min(READ_TIMEOUT, remaining)),
            allow_redirects=allow_redirects,
            proxy=self.proxy,
        ) as response:
            text = await response.text()
        return Response(response.status, text, response.headers)


def not_attempted(what: str) -> MCPError:
    """A request of a batch never sent: the batch's deadline came first (nothing reached Twilio)."""
    return MCPError(
        ErrorCode.TIMEOUT,
        f"messaging: the call's deadline passed before {what} (not sent)",
        details={"not_attempted": True},
    )


def create_many(account: TwilioAccount, messages: list[dict[str, Any]], *, deadline: float,
                concurrency: int) -> list[Any]:  # fmt: skip
    """Create many messages at Twilio at once: `concurrency` requests in flight on kept-alive
    connections. One answer per request, in order: the library's MessageInstance, or the
    MCPError it came to. A request not started before `deadline` is not sent (not_attempted)."""
    if not messages:
        return []
    started = time.perf_counter()
    coroutine = _create_many(account, messages, deadline, concurrency)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        answers = asyncio.run(coroutine)
    else:  # called from async code: the batch gets a loop of its own on another thread
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            answers = pool.submit(asyncio.run, coroutine).result()
    outcomes = Counter("ok" if not isinstance(a, MCPError) else str(a.code) for a in answers)
    logger.info("upstream twilio send message x%d -> %s in %.1f ms", len(messages), dict(outcomes),
                (time.perf_counter() - started) * 1000)  # fmt: skip
    return answers


async def _create_many(account: TwilioAccount, messages: list[dict[str, Any]], deadline: float,
                       concurrency: int) -> list[Any]:  # fmt: skip
    base = settings.TWILIO_API_BASE.rstrip("/")
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
        api = Client(account.account_sid, account.auth_token, environment={},
                     http_client=BatchHttpClient(base, session, deadline))  # fmt: skip
        gate = asyncio.Semaphore(concurrency)

        async def create(kwargs: dict[str, Any]) -> Any:
            async with gate:
                if time.monotonic() >= deadline:
                    return not_attempted("send message")
                try:
                    return await api.messages.create_async(**kwargs)
                except TwilioRestException as exc:
                    return map_error(exc, "send message")
                except TimeoutError:
                    return MCPError(ErrorCode.TIMEOUT, "twilio did not answer in time (send message)")
                except (aiohttp.ClientError, TwilioException, OSError, ValueError):
                    return MCPError(ErrorCode.UPSTREAM_ERROR, "twilio cannot be reached (send message)")

        return await asyncio.gather(*(create(kwargs) for kwargs in messages))


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
