"""The provider's tracking webhooks: delivery, bounce and spam-complaint events in Postmark's
documented shape, POSTed as JSON to /webhooks/postmark?tenant=<slug>.

Postmark signs nothing: a webhook authenticates with HTTP basic auth in the URL it is given
(https://user:password@askpro.example.com/webhooks/postmark?tenant=acme), which is also how
django-anymail's tracking views authenticate every provider (its WEBHOOK_SECRET,
"user:password"). So the tenant's webhook secret is that "user:password" pair, compared in
constant time with the Authorization header; the payload is then read by anymail's Postmark
tracking parser (services.normalized_event). Secrets are per tenant only (each tenant has its
own provider account), so a delivery names its tenant in the URL. Mailgun's, SendGrid's and
SES's event formats are not taken here (their sending works; their events do not update
status or suppress).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any

from askpro.models import Company
from mcp_core.webhooks import (
    EventIdentity,
    HandlerError,
    SignatureError,
    WebhookDelivery,
    verified_json,
    webhook,
)

from . import services
from .services import WEBHOOK_SECRET

SIGNATURE_MAX_CHARS = 512  # "Basic " and the base64 of a user:password pair


def verify_postmark(delivery: WebhookDelivery, secret: str) -> dict[str, Any]:
    """Basic auth (the webhook URL's user:password) against the tenant's webhook secret."""
    header = delivery.signature
    if not header:
        raise SignatureError("missing_signature")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded or len(header) > SIGNATURE_MAX_CHARS:
        raise SignatureError("malformed_signature", "the Authorization header must be HTTP basic auth")
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("malformed_signature", "the Authorization header is not base64") from None
    if not secret:
        raise SignatureError("no_secret")
    if not hmac.compare_digest(given, secret.encode("utf-8")):
        raise SignatureError("bad_signature", "the webhook's user:password does not match")
    return verified_json(delivery.body)


def identify(payload: dict[str, Any], raw: bytes) -> EventIdentity:
    """A bounce or complaint has Postmark's ID; a delivery is one per message and recipient."""
    kind = str(payload.get("RecordType") or "unknown")[:40]
    message_id = str(payload.get("MessageID") or "")[:100]
    record_id = str(payload.get("ID") or "")[:40]
    recipient = str(payload.get("Recipient") or payload.get("Email") or "")[:254].lower()
    if record_id:
        key = f"{kind}:{record_id}"
    elif message_id:
        key = f"{kind}:{message_id}:{recipient}"
    else:
        key = f"sha256:{hashlib.sha256(raw).hexdigest()}"
    return EventIdentity(record_id or message_id, kind, key[:255])


def claimed_tenant(delivery: WebhookDelivery) -> int | None:
    """Postmark's payload names no tenant of ours: the URL's `?tenant=` does."""
    return None


def sign_webhook(body: bytes, secret: str) -> dict[str, str]:
    """Headers of a delivery authenticated as Postmark sends it (for tests and the sandbox)."""
    token = base64.b64encode(secret.encode("utf-8")).decode("ascii")
    return {"Authorization": f"Basic {token}", "Content-Type": "application/json"}


@webhook(
    provider="postmark",
    signature_header="Authorization",
    verify=verify_postmark,
    secret=WEBHOOK_SECRET,
    identify=identify,
    claimed_tenant=claimed_tenant,
    sandbox_signer="mcp_servers.mail.webhooks.sign_webhook",
    signature_max_chars=SIGNATURE_MAX_CHARS,
)
def handle(event) -> str:
    """Apply a delivery, bounce or complaint (suppressing the address where it must)."""
    company = Company.objects.filter(pk=event.tenant_id).first() if event.tenant_id else None
    if company is None:
        raise HandlerError("the delivery's tenant no longer exists")
    return services.handle_tracking_event(company, event.payload)
