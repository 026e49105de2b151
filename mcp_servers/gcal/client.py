"""Google Calendar through the official `google-api-python-client`, built from the discovery
document it ships (static, no network), with `google-auth` credentials per tenant: a service
account (optionally acting as a Workspace user by domain-wide delegation) or an OAuth refresh
token. Requests go to GCAL_API_BASE and tokens to GCAL_TOKEN_URI (the sandbox in tests).

Every request runs under the call's deadline: the socket timeout is what the call has left,
and Google's rate-limit answers (429, 403 rateLimitExceeded/userRateLimitExceeded) are retried
with exponential backoff (or Retry-After) only while the deadline allows the wait. Errors are
mapped to MCP error codes with Google's own message, never a credential.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import google_auth_httplib2
import httplib2
from django.conf import settings
from google.auth.exceptions import GoogleAuthError, RefreshError, TransportError
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account
from googleapiclient.discovery import build_from_document
from googleapiclient.errors import HttpError

from mcp_core.contracts import ErrorCode, MCPError, OperationContext

from .discovery import document

logger = logging.getLogger(__name__)

SCOPES = ["https://www.googleapis.com/auth/calendar"]
READ_TIMEOUT = 15.0
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
# A backoff never starts unless this much of the deadline is left after it for the retry.
RETRY_MARGIN_S = 0.25


@dataclass(frozen=True)
class GoogleAuth:
    """A tenant's Google credential material (never in repr): a service-account key (JSON)
    with an optional delegated user, or an OAuth refresh token."""

    mode: str
    secret: str
    delegated_user: str = ""

    def __repr__(self) -> str:
        return f"GoogleAuth(mode={self.mode!r})"

    @property
    def fingerprint(self) -> str:
        material = f"{self.mode}\0{self.secret}\0{self.delegated_user}\0{settings.GCAL_TOKEN_URI}"
        return hashlib.sha256(material.encode()).hexdigest()


# google-auth credentials per tenant and key, so an access token is reused until it expires.
_credentials: dict[str, Any] = {}
_credentials_lock = threading.Lock()


def credentials_for(auth: GoogleAuth):
    """google-auth credentials for the material, cached in this process (never in Redis)."""
    key = auth.fingerprint
    with _credentials_lock:
        found = _credentials.get(key)
    if found is not None:
        return found
    if auth.mode == "service_account":
        try:
            info = json.loads(auth.secret)
            info["token_uri"] = settings.GCAL_TOKEN_URI
            made = service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
        except (ValueError, KeyError, TypeError):
            raise MCPError(
                ErrorCode.NOT_CONFIGURED,
                "gcal: this tenant's service account key is not a valid Google key file; upload it again "
                "in the admin (Google Calendar accounts)",
            ) from None
        if auth.delegated_user:
            made = made.with_subject(auth.delegated_user)
    else:
        made = user_credentials.Credentials(
            token=None,
            refresh_token=auth.secret,
            client_id=settings.GCAL_OAUTH_CLIENT_ID,
            client_secret=settings.GCAL_OAUTH_CLIENT_SECRET,
            token_uri=settings.GCAL_TOKEN_URI,
            scopes=SCOPES,
        )
    with _credentials_lock:
        if len(_credentials) > 1000:
            _credentials.clear()
        return _credentials.setdefault(key, made)


def forget_credentials() -> None:
    """Drop cached credentials (and this thread's services built on them)."""
    with _credentials_lock:
        _credentials.clear()
    _services.__dict__.pop("by_key", None)


class _Service:
    """The library's Calendar service for one credential, with its resources (events(),
    calendarList(), …) made once: the library builds every method and its docstring each time a
    resource is asked for (several ms of CPU), so they are kept per thread and credential."""

    def __init__(self, auth: GoogleAuth) -> None:
        self.http = google_auth_httplib2.AuthorizedHttp(
            credentials_for(auth), http=httplib2.Http(timeout=READ_TIMEOUT)
        )
        self.service = build_from_document(
            document(),
            http=self.http,
            client_options={"api_endpoint": settings.GCAL_API_BASE + "/calendar/v3/"},
        )
        self.resources: dict[str, Any] = {}

    def __getattr__(self, name: str):
        def resource():
            found = self.resources.get(name)
            if found is None:
                found = self.resources[name] = getattr(self.service, name)()
            return found

        return resource

    def set_timeout(self, timeout: float) -> None:
        """The socket timeout for the next request, on new and kept-alive connections alike."""
        http = self.http.http
        http.timeout = timeout
        for connection in list(http.connections.values()):
            connection.timeout = timeout
            if getattr(connection, "sock", None) is not None:
                connection.sock.settimeout(timeout)


_services = threading.local()


def calendar_service(auth: GoogleAuth, timeout: float) -> _Service:
    """This thread's service for the credential and API base, its timeout set to `timeout`."""
    cache: dict[tuple[str, str], _Service] = _services.__dict__.setdefault("by_key", {})
    key = (auth.fingerprint, settings.GCAL_API_BASE)
    service = cache.get(key)
    if service is None:
        if len(cache) > 50:
            cache.clear()
        service = cache[key] = _Service(auth)
    service.set_timeout(timeout)
    return service


def _reason(exc: HttpError) -> str:
    try:
        errors = json.loads(exc.content or b"{}").get("error", {}).get("errors") or [{}]
        return str(errors[0].get("reason") or "")
    except (ValueError, AttributeError):
        return ""


def _google_message(exc: HttpError) -> str:
    try:
        return str(json.loads(exc.content or b"{}").get("error", {}).get("message") or "")[:300]
    except (ValueError, AttributeError):
        return ""


def is_rate_limited(exc: HttpError) -> bool:
    status = exc.resp.status
    return status == 429 or (status == 403 and _reason(exc) in RATE_LIMIT_REASONS)


def backoff_delay(attempt: int, retry_after: str | None) -> float:
    """Retry-After when Google gave one, else base * 2^attempt with jitter (50-100 %)."""
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            pass
    return settings.GCAL_RETRY_BASE_SECONDS * (2**attempt) * random.uniform(0.5, 1.0)  # noqa: S311


def execute(
    ctx: OperationContext | None,
    auth: GoogleAuth,
    what: str,
    build_request: Callable[[Any], Any],
    *,
    deadline: float | None = None,
    if_match: str | None = None,
) -> Any:
    """Build a request with `build_request(service)` and execute it under the deadline,
    retrying rate-limit answers with backoff. `what` names the step (never a secret)."""
    deadline = (
        deadline if deadline is not None else (ctx.deadline if ctx else time.monotonic() + READ_TIMEOUT)
    )
    attempt = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise MCPError(ErrorCode.TIMEOUT, f"gcal: the call's deadline passed before {what}")
        started = time.perf_counter()
        status: Any = "ok"
        try:
            request = build_request(calendar_service(auth, min(READ_TIMEOUT, remaining)))
            if if_match:
                request.headers["If-Match"] = if_match
            return request.execute()
        except HttpError as exc:
            status = exc.resp.status
            if is_rate_limited(exc) and attempt < settings.GCAL_MAX_RETRIES:
                delay = backoff_delay(attempt, exc.resp.get("retry-after"))
                if time.monotonic() + delay + RETRY_MARGIN_S < deadline:
                    attempt += 1
                    time.sleep(delay)
                    continue
            raise map_error(exc, what, attempts=attempt + 1) from None
        except RefreshError as exc:
            status = "refresh_error"
            raise refresh_error(exc, what) from None
        except TimeoutError:
            status = "timeout"
            raise MCPError(ErrorCode.TIMEOUT, f"google did not answer in time ({what})") from None
        except (TransportError, httplib2.HttpLib2Error, OSError, GoogleAuthError) as exc:
            status = type(exc).__name__
            raise MCPError(ErrorCode.UPSTREAM_ERROR, f"google cannot be reached ({what})") from None
        finally:
            logger.info(
                "upstream google %s -> %s in %.1f ms", what, status, (time.perf_counter() - started) * 1000
            )


def refresh_error(exc: RefreshError, what: str) -> MCPError:
    """The token endpoint refused the tenant's credentials (revoked refresh token, a service
    account without delegation): say so and what to do, without the credential."""
    detail = ""
    if len(exc.args) > 1 and isinstance(exc.args[1], dict):
        detail = str(exc.args[1].get("error") or "")[:60]
    return MCPError(
        ErrorCode.UPSTREAM_ERROR,
        f"google refused this tenant's credentials ({what}{', ' + detail if detail else ''}); "
        "connect Google Calendar again in the admin",
        details={"upstream_status": 401, "google_reason": detail or "auth"},
    )


def map_error(exc: HttpError, what: str, *, attempts: int = 1) -> MCPError:
    """Google's answer -> an MCP error code; Google's message is passed on (it names no
    credential), except for 401."""
    status, reason = exc.resp.status, _reason(exc)
    message = _google_message(exc) or f"HTTP {status}"
    details: dict[str, Any] = {"upstream_status": status, "google_reason": reason}
    if status == 401:
        return MCPError(
            ErrorCode.UPSTREAM_ERROR, f"google rejected the tenant's access ({what}, 401)", details=details
        )
    if is_rate_limited(exc):
        details["attempts"] = attempts
        return MCPError(
            ErrorCode.RATE_LIMITED,
            f"google: rate limited ({what}) after {attempts} attempt(s) within the deadline",
            details=details,
            retry_after=1.0,
        )
    if status == 403:
        return MCPError(ErrorCode.FORBIDDEN, f"google: no access ({what}): {message}", details=details)
    if status == 404:
        return MCPError(ErrorCode.NOT_FOUND, f"google: not found ({what})", details=details)
    if status in (409, 412):
        return MCPError(ErrorCode.CONFLICT, f"google: {message} ({what})", details=details)
    if status == 410:
        return MCPError(ErrorCode.CONFLICT, f"google: gone ({what}): {message}", details=details)
    if 400 <= status < 500:
        return MCPError(ErrorCode.VALIDATION_ERROR, f"google refused it ({what}): {message}", details=details)
    return MCPError(ErrorCode.UPSTREAM_ERROR, f"google failed ({what}, {status}): {message}", details=details)
