"""Stripe through the official `stripe` library: per-tenant credentials, a pooled connection per
API base, timeouts bounded by the call's deadline, and Stripe's errors mapped to MCP error codes.

The library's own HTTP layer is kept (form encoding, Stripe-Version, idempotency keys, retries on
409/5xx/connection errors); we hand it our pooled `requests.Session` and make its timeout and
retry decisions deadline-aware through a context variable set around each call.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
import stripe
from django.conf import settings

from askpro.models import Company
from mcp_core.contracts import ErrorCode, MCPError, OperationContext
from mcp_core.http import parse_retry_after, pooled_session
from mcp_core.tenancy import TenantCredentials

logger = logging.getLogger(__name__)

T = TypeVar("T")

CONNECT_TIMEOUT = 3.05
READ_TIMEOUT = 20.0
MAX_NETWORK_RETRIES = 2  # the library retries 409 (idempotency key in flight), 5xx and network errors

# The deadline (time.monotonic()) of the call running in this context; None = no deadline.
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("stripe_deadline", default=None)


class DeadlineRequestsClient(stripe.RequestsClient):
    """stripe's RequestsClient with a per-call timeout: never longer than the call has left,
    and no retry when the backoff would outlive the deadline."""

    def __init__(self, session: requests.Session) -> None:
        super().__init__(timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), session=session)

    @property  # the parent reads self._timeout on every request
    def _timeout(self) -> tuple[float, float]:
        deadline = _deadline.get()
        if deadline is None:
            return (CONNECT_TIMEOUT, READ_TIMEOUT)
        remaining = max(0.001, deadline - time.monotonic())
        return (min(CONNECT_TIMEOUT, remaining), min(READ_TIMEOUT, remaining))

    @_timeout.setter
    def _timeout(self, value: Any) -> None:  # the parent's __init__ assigns it; ours is derived
        return

    def _should_retry(self, response, api_connection_error, num_retries, max_network_retries) -> bool:
        if not super()._should_retry(response, api_connection_error, num_retries, max_network_retries):
            return False
        deadline = _deadline.get()
        # The library sleeps at most ~2 s between tries; a retry needs that plus some time to answer.
        return (
            deadline is None or deadline - time.monotonic() > self._sleep_time_seconds(num_retries + 1) + 0.2
        )


@dataclass(frozen=True)
class StripeCredentials:
    api_key: str
    api_base: str
    source: str  # "tenant" | "platform"

    def __repr__(self) -> str:  # never show the key
        return f"StripeCredentials(api_base={self.api_base!r}, source={self.source!r})"


STRIPE_KEY = TenantCredentials(
    service="stripe",
    tenant_field="stripe_secret_key",
    platform_setting="STRIPE_SECRET_KEY",
    what="secret key",
)


def credentials_for(company: Company | None) -> StripeCredentials:
    """The tenant's own secret key, else the platform key; neither -> not_configured."""
    found = STRIPE_KEY.resolve(company)
    return StripeCredentials(found.secret, settings.STRIPE_API_BASE.rstrip("/"), found.source)


_clients: dict[tuple[str, str], stripe.StripeClient] = {}
_http_clients: dict[str, DeadlineRequestsClient] = {}
_lock = threading.Lock()


def http_client_for(api_base: str) -> DeadlineRequestsClient:
    """One HTTP client (one pooled session) per API base, shared by every key."""
    with _lock:
        client = _http_clients.get(api_base)
        if client is None:
            client = _http_clients[api_base] = DeadlineRequestsClient(pooled_session("stripe", api_base))
        return client


def stripe_client(creds: StripeCredentials) -> stripe.StripeClient:
    """A StripeClient per (key, base), cached; the cache key holds a hash, not the key."""
    cache_key = (hashlib.sha256(creds.api_key.encode()).hexdigest(), creds.api_base)
    client = _clients.get(cache_key)
    if client is None:
        http = http_client_for(creds.api_base)
        with _lock:
            client = _clients.get(cache_key)
            if client is None:
                client = _clients[cache_key] = stripe.StripeClient(
                    creds.api_key,
                    base_addresses={"api": creds.api_base},
                    http_client=http,
                    max_network_retries=MAX_NETWORK_RETRIES,
                )
    return client


@contextmanager
def deadline_at(deadline: float | None) -> Iterator[None]:
    """Stripe calls inside this block time out (and stop retrying) by `deadline` (monotonic)."""
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


def deadline_of(ctx: OperationContext | None):
    return deadline_at(ctx.deadline if ctx is not None else None)


def call(ctx: OperationContext | None, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one Stripe library call under the call's deadline, mapping failures to MCPError.
    `what` names the step for messages and logs (never the key, never params)."""
    if ctx is not None and ctx.remaining() <= 0:
        raise MCPError(ErrorCode.TIMEOUT, f"stripe: the call's deadline passed before {what}")
    started = time.perf_counter()
    status: Any = "ok"
    try:
        with deadline_of(ctx):
            return fn(*args, **kwargs)
    except stripe.StripeError as exc:
        status = exc.http_status or type(exc).__name__
        raise map_error(exc, what) from None
    finally:
        logger.info(
            "upstream stripe %s -> %s in %.1f ms", what, status, (time.perf_counter() - started) * 1000
        )


def map_error(exc: stripe.StripeError, what: str) -> MCPError:
    """Stripe's exception -> an MCP error code. Messages carry Stripe's own text, which never
    holds the full key (it masks it); for 401/403 we do not even pass that on."""
    status = exc.http_status
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None) or getattr(exc, "code", None)
    param = getattr(error, "param", None) or getattr(exc, "param", None)
    details: dict[str, Any] = {"upstream_status": status}
    if code:
        details["stripe_code"] = code
    if param:
        details["field"] = param
    text = (getattr(error, "message", None) or exc.user_message or "").strip() or type(exc).__name__
    if isinstance(exc, stripe.AuthenticationError):
        return MCPError(
            ErrorCode.UPSTREAM_ERROR, f"stripe rejected the secret key ({what}, 401)", details=details
        )
    if isinstance(exc, stripe.PermissionError):
        return MCPError(
            ErrorCode.UPSTREAM_ERROR, f"stripe: the key may not do this ({what}, 403)", details=details
        )
    if isinstance(exc, stripe.IdempotencyError):
        return MCPError(
            ErrorCode.CONFLICT,
            f"stripe: this idempotency key was already used with other parameters ({what})",
            details=details,
        )
    if isinstance(exc, stripe.RateLimitError):
        headers = exc.headers or {}
        retry_after = parse_retry_after(headers.get("Retry-After") or headers.get("retry-after")) or 1.0
        return MCPError(
            ErrorCode.RATE_LIMITED, f"stripe: rate limited ({what})", details=details, retry_after=retry_after
        )
    if isinstance(exc, stripe.CardError):
        details["decline_code"] = getattr(exc, "decline_code", None) or getattr(error, "decline_code", None)
        return MCPError(ErrorCode.CONFLICT, f"stripe: {text}", details=details)
    if isinstance(exc, stripe.APIConnectionError):
        cause = exc.__cause__
        if isinstance(cause, requests.Timeout):
            return MCPError(ErrorCode.TIMEOUT, f"stripe did not answer in time ({what})", details=details)
        return MCPError(ErrorCode.UPSTREAM_ERROR, f"stripe cannot be reached ({what})", details=details)
    if status == 404:
        return MCPError(ErrorCode.NOT_FOUND, f"stripe: {text}", details=details)
    if status == 409:
        return MCPError(ErrorCode.CONFLICT, f"stripe: {text} ({what})", details=details)
    if status is not None and 400 <= status < 500:
        prefix = f"{param}: " if param else ""
        return MCPError(ErrorCode.VALIDATION_ERROR, f"{prefix}stripe: {text}", details=details)
    return MCPError(
        ErrorCode.UPSTREAM_ERROR, f"stripe failed ({what}, {status or 'no status'}): {text}", details=details
    )
