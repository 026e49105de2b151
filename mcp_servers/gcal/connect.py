"""The admin's "connect Google Calendar": Google's OAuth authorization-code flow.

The operator is sent to GCAL_AUTH_URI (Google's consent page; the sandbox's with SANDBOX=1)
with `access_type=offline` and `prompt=consent`, so Google issues a refresh token; the state
parameter is signed and names the tenant and a nonce kept in the operator's session. The
callback exchanges the code at GCAL_TOKEN_URI and stores the refresh token encrypted on the
tenant's GoogleAccount (mode OAuth). Neither the code nor a token is logged or shown.
"""

from __future__ import annotations

import logging
import secrets
import time
from urllib.parse import urlencode

import requests
from django.conf import settings
from django.core import signing

from askpro.models import Company
from mcp_core.contracts import MCPError

from .client import SCOPES, GoogleAuth, execute, forget_credentials
from .models import GoogleAccount

logger = logging.getLogger(__name__)
STATE_SALT = "gcal.connect"
STATE_MAX_AGE_S = 600
SESSION_KEY = "gcal_connect_nonce"


class ConnectError(Exception):
    """The flow cannot finish; the message says why (no secret in it)."""


def _primary_calendar(refresh_token: str) -> str:
    """Who connected: the id of their primary calendar (their address); "" if not readable."""
    try:
        answer = execute(
            None, GoogleAuth("oauth", refresh_token), "list calendars",
            lambda s: s.calendarList().list(maxResults=250), deadline=time.monotonic() + 10,
        )  # fmt: skip
    except MCPError:
        return ""
    return next(
        (str(i["id"])[:254] for i in answer.get("items") or [] if i.get("primary") and i.get("id")), ""
    )


def authorization_url(session, company: Company, redirect_uri: str) -> str:
    if not settings.GCAL_OAUTH_CLIENT_ID or not settings.GCAL_OAUTH_CLIENT_SECRET:
        raise ConnectError(
            "GCAL_OAUTH_CLIENT_ID and GCAL_OAUTH_CLIENT_SECRET must be set to connect Google Calendar"
        )
    nonce = secrets.token_urlsafe(16)
    session[SESSION_KEY] = nonce
    state = signing.dumps({"company": company.pk, "nonce": nonce}, salt=STATE_SALT)
    query = {
        "client_id": settings.GCAL_OAUTH_CLIENT_ID,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": " ".join(SCOPES),
        "access_type": "offline",
        "prompt": "consent",
        "include_granted_scopes": "true",
        "state": state,
    }
    return f"{settings.GCAL_AUTH_URI}?{urlencode(query)}"


def finish(session, *, state: str, code: str, error: str, redirect_uri: str) -> GoogleAccount:
    """Check the state, exchange the code, store the refresh token (encrypted)."""
    if error:
        raise ConnectError(f"Google did not grant access ({error[:50]})")
    try:
        data = signing.loads(state, salt=STATE_SALT, max_age=STATE_MAX_AGE_S)
    except signing.BadSignature:
        raise ConnectError("the sign-in came back with an invalid or expired state; start again") from None
    nonce = session.pop(SESSION_KEY, None)
    if not nonce or not secrets.compare_digest(str(nonce), str(data.get("nonce"))):
        raise ConnectError("the sign-in was not started in this session; start again")
    company = Company.objects.filter(pk=data.get("company")).first()
    if company is None or not code:
        raise ConnectError("the sign-in came back without a code or for an unknown tenant")
    try:
        answer = requests.post(
            settings.GCAL_TOKEN_URI,
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                  "client_id": settings.GCAL_OAUTH_CLIENT_ID, "client_secret": settings.GCAL_OAUTH_CLIENT_SECRET},
            timeout=10,
        )  # fmt: skip
        body = answer.json()
    except (requests.RequestException, ValueError):
        raise ConnectError("Google's token endpoint could not be reached; try again") from None
    refresh = body.get("refresh_token") if isinstance(body, dict) else None
    if answer.status_code != 200 or not refresh:
        reason = str(body.get("error", "")) if isinstance(body, dict) else ""
        raise ConnectError(f"Google refused the code ({reason[:50] or answer.status_code})")
    row, _ = GoogleAccount.objects.get_or_create(company=company)
    row.mode = GoogleAccount.Mode.OAUTH
    row.refresh_token = refresh
    forget_credentials()
    row.connected_as = _primary_calendar(refresh)
    row.save()
    logger.info("gcal: tenant %s connected Google Calendar", company.slug)
    return row
