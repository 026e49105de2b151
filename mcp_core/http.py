"""The one HTTP client base every upstream client uses (Cal.com, Retell, Sentry, ...).

It owns: a pooled requests.Session per (service, base URL) per process, connect/read
timeouts bounded by the call's deadline, bounded retries with backoff and full jitter for
idempotent requests on retryable answers only, mapping of failures to MCP error codes, a
request id passed upstream, and logs that never carry secrets (no headers, no query string).
"""

from __future__ import annotations

import email.utils
import http.cookiejar
import logging
import os
import random
import threading
import time
from typing import Any, ClassVar

import requests
from requests.adapters import HTTPAdapter

from .contracts import ErrorCode, MCPError, OperationContext

logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
# Statuses whose Retry-After is honoured (RFC 9110 §10.2.3: 429 and 503 carry it).
RETRY_AFTER_STATUSES = frozenset({429, 503})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

_sessions: dict[tuple[str, str], requests.Session] = {}
_sessions_lock = threading.Lock()


def pooled_session(service: str, base_url: str, *, pool_maxsize: int = 16) -> requests.Session:
    """The process-wide session for one upstream: connections are reused across calls."""
    key = (service, base_url)
    session = _sessions.get(key)
    if session is None:
        with _sessions_lock:
            session = _sessions.get(key)
            if session is None:
                session = requests.Session()
                # One session serves every tenant: a cookie set by an answer for one tenant
                # must never ride along on the next tenant's request.
                session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
                # With trust_env on, requests reads the proxy variables, NO_PROXY, the CA bundle
                # variables and ~/.netrc again on every request (0.3-0.6 ms each, measured with
                # the Twilio sandbox). The environment does not change while we run: read it
                # once. (A credential from ~/.netrc is never wanted: every client sends its own.)
                session.trust_env = False
                session.proxies.update(requests.utils.get_environ_proxies(base_url))
                bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
                if bundle:
                    session.verify = bundle
                # Retries are ours (deadline-aware, idempotent-only); urllib3 must not add its own.
                adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_maxsize, max_retries=0)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                _sessions[key] = session
    return session


def http_pools() -> dict[tuple[str, str], requests.Session]:
    """Every pooled session of this process (for the connection pool report)."""
    return dict(_sessions)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 and seconds == seconds else None  # not negative, not NaN
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class UpstreamClient:
    """Base for upstream API clients. Subclasses set `service`, build headers, and may
    override `error_message()` to turn the upstream's error body into a readable message.

    `request()` returns the response for a 2xx answer and raises MCPError otherwise:
    400/422 -> validation_error, 404 -> not_found, 409 -> conflict, 429 -> rate_limited
    (with retry_after), 401/403 and 5xx and connection failures -> upstream_error, a
    timeout -> timeout.
    """

    service: ClassVar[str] = ""
    connect_timeout: ClassVar[float] = 3.05
    read_timeout: ClassVar[float] = 10.0
    max_retries: ClassVar[int] = 2
    backoff_base: ClassVar[float] = 0.2
    backoff_cap: ClassVar[float] = 2.0
    # A Retry-After up to this long is waited out (within the deadline); a longer one goes back
    # to the caller as retry_after instead of holding a worker.
    max_retry_after: ClassVar[float] = 10.0

    def __init__(self, *, base_url: str, headers: dict[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = dict(headers or {})
        self.session = pooled_session(self.service, self.base_url)

    def __repr__(self) -> str:  # never show headers: they carry credentials
        return f"<{type(self).__name__} {self.base_url}>"

    # --- hooks ---
    def error_message(self, response: requests.Response) -> str:
        """A readable message from an error answer. Never include request headers."""
        try:
            body = response.json()
        except ValueError:
            return response.reason or f"HTTP {response.status_code}"
        if isinstance(body, dict):
            for key in ("message", "error_message", "detail", "error"):
                value = body.get(key)
                if isinstance(value, str) and value:
                    return value
                if isinstance(value, dict) and isinstance(value.get("message"), str):
                    return value["message"]
        return response.reason or f"HTTP {response.status_code}"

    # --- the one way out ---
    def request(
        self,
        method: str,
        path: str,
        *,
        ctx: OperationContext | None = None,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> requests.Response:
        method = method.upper()
        merged = {**self._headers, **(headers or {})}
        names = {name.lower() for name in merged}
        if ctx is not None and "x-request-id" not in names:
            merged["X-Request-ID"] = ctx.request_id
        if idempotent is None:
            # Header names are case-insensitive: "idempotency-key" makes a POST safe to repeat too.
            idempotent = method in IDEMPOTENT_METHODS or "idempotency-key" in names
        url = f"{self.base_url}/{path.lstrip('/')}"
        shown = path.split("?")[0]  # messages and logs never carry a query string
        attempt = 0
        while True:
            attempt += 1
            read_timeout = self.read_timeout
            if ctx is not None:
                remaining = ctx.remaining()
                if remaining <= 0:
                    raise MCPError(
                        ErrorCode.TIMEOUT,
                        f"{self.service}: the call's deadline passed before the upstream answered",
                    )
                read_timeout = min(read_timeout, remaining)
            started = time.perf_counter()
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    data=data,
                    headers=merged,
                    timeout=(min(self.connect_timeout, read_timeout), read_timeout),
                    # A redirect could carry our credential headers to another host; APIs do not redirect.
                    allow_redirects=False,
                )
            except requests.Timeout:
                self._log(method, shown, None, started, attempt)
                if idempotent and self._may_retry(attempt, ctx, None):
                    continue
                raise MCPError(
                    ErrorCode.TIMEOUT, f"{self.service} did not answer in time ({method} {shown})"
                ) from None
            except requests.ConnectionError:
                self._log(method, shown, None, started, attempt)
                if idempotent and self._may_retry(attempt, ctx, None):
                    continue
                raise MCPError(
                    ErrorCode.UPSTREAM_ERROR, f"{self.service} cannot be reached ({method} {shown})"
                ) from None
            except requests.RequestException as exc:
                # A broken answer (bad chunking, undecodable body, invalid URL): the upstream's fault
                # or ours, never worth a retry; the exception text may hold the URL, so only its name.
                self._log(method, shown, None, started, attempt)
                raise MCPError(
                    ErrorCode.UPSTREAM_ERROR,
                    f"{self.service}: unusable answer ({type(exc).__name__}) for {method} {shown}",
                ) from None
            self._log(method, shown, response.status_code, started, attempt)
            if response.status_code < 300:
                return response
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if (
                response.status_code in RETRYABLE_STATUSES
                and idempotent
                and self._may_retry(
                    attempt, ctx, retry_after if response.status_code in RETRY_AFTER_STATUSES else None
                )
            ):
                continue
            raise self._error_for(response, method, shown, retry_after)

    def _may_retry(self, attempt: int, ctx: OperationContext | None, retry_after: float | None) -> bool:
        if attempt > self.max_retries:
            return False
        # Full jitter: spreads retries of many callers so they do not arrive together.
        delay = random.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1)))
        if retry_after is not None:
            delay = max(delay, retry_after)
        if ctx is not None and delay >= ctx.remaining():
            return False
        if retry_after is not None and retry_after > self.max_retry_after:
            return False  # the upstream asks for a long pause: give the caller retry_after instead
        time.sleep(delay)
        return True

    def _error_for(
        self, response: requests.Response, method: str, path: str, retry_after: float | None
    ) -> MCPError:
        status = response.status_code
        message = f"{self.service}: {self._scrub(self.error_message(response))}"
        details: dict[str, Any] = {"upstream_status": status}
        if status < 400:
            return MCPError(
                ErrorCode.UPSTREAM_ERROR,
                f"{self.service} answered {method} {path} with an unexpected redirect ({status})",
                details=details,
            )
        if status in (400, 422):
            return MCPError(ErrorCode.VALIDATION_ERROR, message, details=details)
        if status == 404:
            return MCPError(ErrorCode.NOT_FOUND, message, details=details)
        if status == 409:
            return MCPError(ErrorCode.CONFLICT, message, details=details)
        if status == 429:
            return MCPError(ErrorCode.RATE_LIMITED, message, details=details, retry_after=retry_after or 1.0)
        if status in (401, 403):
            return MCPError(
                ErrorCode.UPSTREAM_ERROR,
                f"{self.service} rejected the credentials ({status})",
                details=details,
            )
        if status == 503 and retry_after is not None:
            return MCPError(ErrorCode.UPSTREAM_ERROR, message, details=details, retry_after=retry_after)
        return MCPError(ErrorCode.UPSTREAM_ERROR, message, details=details)

    def _scrub(self, text: str) -> str:
        """Upstreams sometimes echo the credential they rejected: never pass it on."""
        for value in self._headers.values():
            for secret in {value, value.split(" ", 1)[-1]}:  # "Bearer <token>" and "<token>"
                if len(secret) >= 8 and secret in text:
                    text = text.replace(secret, "[redacted]")
        return text

    def _log(self, method: str, path: str, status: int | None, started: float, attempt: int) -> None:
        logger.info(
            "upstream %s %s %s -> %s in %.1f ms (attempt %d)",
            self.service,
            method,
            path.split("?")[0],
            status if status is not None else "no answer",
            (time.perf_counter() - started) * 1000,
            attempt,
        )
