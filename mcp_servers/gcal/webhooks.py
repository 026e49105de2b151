"""Google Calendar push notifications: body-less POSTs to /webhooks/gcal?tenant=<slug> with
X-Goog-Channel-ID, X-Goog-Channel-Token, X-Goog-Resource-State ("sync" first, then "exists" /
"not_exists") and X-Goog-Message-Number.

Google signs nothing; it sends back the token given when the channel was opened. Our token
is "gc1.<channel id>.<HMAC-SHA256 of the channel id under the tenant's push secret>", so a
notification is verified by channel id and token together: the id in the header must be the
one the token was minted for, and only the tenant's secret makes a matching MAC. A
notification then triggers an incremental sync of that channel's calendar (never a full one:
only a 410 Gone makes one, as the API requires); a stopped or unknown channel is ignored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from typing import Any

from askpro.models import Company
from mcp_core.contracts import MCPError
from mcp_core.webhooks import (
    EventIdentity,
    HandlerError,
    SignatureError,
    WebhookDelivery,
    verified_json,
    webhook,
)

from .accounts import GCAL_PUSH_SECRET

TOKEN_PREFIX = "gc1"  # noqa: S105 - a format tag, not a secret
_TOKEN = re.compile(r"^gc1\.(?P<channel>[A-Za-z0-9_-]{1,64})\.(?P<mac>[A-Za-z0-9_-]{43})$")
STATES = frozenset({"sync", "exists", "not_exists"})
SIGNATURE_MAX_CHARS = 256
SYNC_DEADLINE_S = 25.0


def channel_token(secret: str, channel_id: str) -> str:
    mac = hmac.new(secret.encode(), f"{TOKEN_PREFIX}.{channel_id}".encode(), hashlib.sha256).digest()
    return f"{TOKEN_PREFIX}.{channel_id}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


def verify_push(delivery: WebhookDelivery, secret: str) -> dict[str, Any]:
    """Channel id and token; the headers are the payload (a body, if any, must be JSON)."""
    token = delivery.signature
    if not token:
        raise SignatureError("missing_signature")
    found = _TOKEN.match(token) if len(token) <= SIGNATURE_MAX_CHARS else None
    if found is None:
        raise SignatureError("malformed_signature", "X-Goog-Channel-Token: not a channel token of ours")
    if not secret:
        raise SignatureError("no_secret")
    if not hmac.compare_digest(token, channel_token(secret, found["channel"])):
        raise SignatureError(
            "bad_signature", "the channel token does not match (unknown channel or wrong tenant)"
        )
    channel = delivery.headers.get("X-Goog-Channel-ID") or found["channel"]
    if channel != found["channel"]:
        raise SignatureError("bad_signature", "X-Goog-Channel-ID is not the channel the token was made for")
    if delivery.body.strip():
        verified_json(delivery.body)  # Calendar sends none; whatever comes must be storable
    state = delivery.headers.get("X-Goog-Resource-State") or "exists"
    if state not in STATES:
        raise SignatureError("bad_payload", "X-Goog-Resource-State: expected sync, exists or not_exists")
    number = delivery.headers.get("X-Goog-Message-Number") or ""
    if number and not (number.isdigit() and len(number) <= 19):
        raise SignatureError("bad_payload", "X-Goog-Message-Number: expected a number")
    resource = delivery.headers.get("X-Goog-Resource-ID") or ""
    return {"channel_id": channel, "state": state, "message_number": int(number) if number else None,
            "resource_id": resource[:255]}  # fmt: skip


def identify(payload: dict[str, Any], raw: bytes) -> EventIdentity:
    """One event per channel and message number (Google numbers each channel's messages)."""
    channel = str(payload.get("channel_id") or "")
    number = payload.get("message_number")
    key = (
        f"{channel}:{number}" if number is not None else f"{channel}:sha256:{hashlib.sha256(raw).hexdigest()}"
    )
    return EventIdentity(channel, f"push.{payload.get('state', 'exists')}", key)


def claimed_tenant(delivery: WebhookDelivery) -> int | None:
    """The tenant whose channel the token names (its secret is then tried)."""
    from .models import PushChannel

    found = (
        _TOKEN.match(delivery.signature or "")
        if len(delivery.signature or "") <= SIGNATURE_MAX_CHARS
        else None
    )
    if found is None:
        return None
    return (
        PushChannel.objects.filter(channel_id=found["channel"]).values_list("company_id", flat=True).first()
    )


@webhook(
    provider="gcal",
    signature_header="X-Goog-Channel-Token",
    verify=verify_push,
    secret=GCAL_PUSH_SECRET,
    identify=identify,
    claimed_tenant=claimed_tenant,
    sandbox_signer="mcp_servers.gcal.sandbox.sign_webhook",
    signature_max_chars=SIGNATURE_MAX_CHARS,
)
def handle(event) -> str:
    """A change on a watched calendar: an incremental sync of it (then the conflict rule)."""
    from . import appointments, sync
    from .accounts import account_for
    from .models import PushChannel

    company = Company.objects.filter(pk=event.tenant_id, is_active=True).first() if event.tenant_id else None
    if company is None:
        raise HandlerError("the delivery's tenant no longer exists")
    channel = (
        PushChannel.objects.select_related("calendar")
        .filter(company=company, channel_id=event.payload.get("channel_id"), stopped_at__isnull=True)
        .first()
    )
    if channel is None:
        return "unknown or stopped channel: ignored"
    if event.payload.get("state") == "sync":
        return "channel confirmed"
    if not channel.calendar.sync_token:  # a notification never starts a full sync
        return "no sync token yet: sync_calendar makes the first (full) sync"
    try:
        _, auth = account_for(company)
        deadline = time.monotonic() + SYNC_DEADLINE_S
        outcome = sync.sync_calendar(
            None, auth, channel.calendar, deadline=deadline, zone=company.timezone or "UTC"
        )
        if outcome.reverted:
            appointments.put_back(channel.calendar, outcome.reverted, deadline=deadline)
    except MCPError as exc:
        raise HandlerError(f"sync failed: {exc.message}") from None
    kind = "full (after 410)" if outcome.restarted_after_gone else ("full" if outcome.full else "incremental")
    return f"{kind} sync: {outcome.changed} changed, {outcome.conflicts} conflict(s)"
