"""Twilio's inbound webhooks: status callbacks and incoming messages, both POSTed form-encoded
to /webhooks/twilio?tenant=<slug> and signed with X-Twilio-Signature.

Twilio signs the URL it called followed by every POST parameter (sorted by name), with HMAC-SHA1
keyed by the account's auth token; the official library's RequestValidator checks it. A proxy
in front may change scheme or host, so the URL checked is MESSAGING_PUBLIC_URL with the
request's path and query when that setting is set. Auth tokens are per tenant only (there is
no platform Twilio account), so a delivery names its tenant in the URL, and only that tenant's
token can verify it. The `tenant` query parameter is covered by the signature.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from django.conf import settings
from twilio.request_validator import RequestValidator

from askpro.models import Company
from mcp_core.limits import shown, string_problem
from mcp_core.webhooks import EventIdentity, HandlerError, SignatureError, WebhookDelivery, webhook

from . import services
from .services import TWILIO_TOKEN, RetryLater

# Base64 of an HMAC-SHA1 (28 characters) or HMAC-SHA256 (44); nothing else is a signature.
_SIGNATURE = re.compile(r"^[A-Za-z0-9+/]{27,43}={0,2}$")
SIGNATURE_MAX_CHARS = 128
MAX_FIELDS = 100  # an incoming message has about 20; a status callback about 10


class _Form(dict):
    """The form's fields with every value of each (RequestValidator reads getlist)."""

    def getlist(self, name: str) -> list[str]:
        return self[name]


def signed_address(url: str) -> str:
    """The URL Twilio called: MESSAGING_PUBLIC_URL (scheme, host and any path prefix a proxy
    adds) with the request's path and query, or the request's own URL without that setting."""
    public = settings.MESSAGING_PUBLIC_URL
    if not public:
        return url
    parts = urlsplit(url)
    return public + parts.path + (f"?{parts.query}" if parts.query else "")


def verify_twilio(delivery: WebhookDelivery, secret: str) -> dict[str, Any]:
    """X-Twilio-Signature over the public URL and the form, through twilio's RequestValidator.
    Returns the form as a dict of strings (the stored payload)."""
    header, raw = delivery.signature, delivery.body
    if not header:
        raise SignatureError("missing_signature")
    if len(header) > SIGNATURE_MAX_CHARS or not _SIGNATURE.match(header):
        raise SignatureError("malformed_signature", "the signature header must be a base64 HMAC")
    if not secret:
        raise SignatureError("no_secret")
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, strict_parsing=False,
                          encoding="utf-8", errors="strict", max_num_fields=MAX_FIELDS)  # fmt: skip
    except UnicodeDecodeError as exc:
        raise SignatureError("bad_payload", f"body: not valid UTF-8 form data (byte {exc.start})") from None
    except ValueError:
        raise SignatureError("bad_payload", f"body: more than {MAX_FIELDS} form fields") from None
    form = _Form()
    for name, value in pairs:
        form.setdefault(name, []).append(value)
    if not RequestValidator(secret).validate(signed_address(delivery.url), form, header):
        raise SignatureError("bad_signature")
    for name, values in form.items():
        problem = string_problem(name) or next((p for p in map(string_problem, values) if p), None)
        if problem:
            raise SignatureError("bad_payload", f"{shown(name, 100)}: {problem}")
    return {name: values[-1] for name, values in form.items()}


def identify(payload: dict[str, Any], raw: bytes) -> EventIdentity:
    """A status callback is one event per message and status; an incoming message one per SID."""
    sid = str(payload.get("MessageSid") or payload.get("SmsMessageSid") or payload.get("SmsSid") or "")
    status = payload.get("MessageStatus")
    if status:
        kind, key = f"status.{status}", f"{sid}:{status}"
    else:
        kind, key = "inbound", f"{sid}:inbound"
    return EventIdentity(sid, kind[:100], key if sid else f"sha256:{hashlib.sha256(raw).hexdigest()}")


def claimed_tenant(delivery: WebhookDelivery) -> int | None:
    """Twilio's payload names no tenant of ours (account SIDs are stored encrypted): the URL's
    `?tenant=` does."""
    return None


def sign_webhook(body: bytes, secret: str, *, url: str) -> dict[str, str]:
    """Headers of a delivery of form `body` to `url`, signed as Twilio does (for tests)."""
    from .sandbox import parse_form, sign

    return {
        "X-Twilio-Signature": sign(url, parse_form(body), secret),
        "Content-Type": "application/x-www-form-urlencoded",
    }


@webhook(
    provider="twilio",
    signature_header="X-Twilio-Signature",
    verify=verify_twilio,
    secret=TWILIO_TOKEN,
    identify=identify,
    claimed_tenant=claimed_tenant,
    sandbox_signer="mcp_servers.messaging.webhooks.sign_webhook",
    signature_max_chars=SIGNATURE_MAX_CHARS,
    body_format="form",
)
def handle(event) -> str:
    """Apply a status (order-independently) or record an incoming message (consent keywords)."""
    company = Company.objects.filter(pk=event.tenant_id).first() if event.tenant_id else None
    if company is None:
        raise HandlerError("the delivery's tenant no longer exists")
    try:
        if event.payload.get("MessageStatus"):
            return services.handle_status_callback(company, event.payload)
        return services.handle_inbound(company, event.payload)
    except RetryLater as exc:
        raise HandlerError(str(exc)) from None
