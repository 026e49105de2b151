"""Test webhook declarations: one valid provider, and one for each mistake the registry refuses."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from mcp_core.tenancy import TenantCredentials
from mcp_core.webhooks import EventIdentity, SignatureError, WebhookDelivery, verified_json, webhook

ECHO_SECRET = TenantCredentials(
    service="echo", tenant_field="stripe_webhook_secret", platform_setting="STRIPE_WEBHOOK_SECRET", what="x"
)


def sign_webhook(body: bytes, secret: str) -> dict[str, str]:
    return {"X-Echo-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def verify(delivery: WebhookDelivery, secret: str) -> dict[str, Any]:
    raw, header = delivery.body, delivery.signature
    if not header:
        raise SignatureError("missing_signature")
    if not secret:
        raise SignatureError("no_secret")
    if not hmac.compare_digest(sign_webhook(raw, secret)["X-Echo-Signature"], header):
        raise SignatureError("bad_signature")
    # What the verifier saw of the URL (a provider like Twilio signs it): kept for the test.
    return {**verified_json(raw), "seen_url": delivery.url}


def identify(payload: dict[str, Any], raw: bytes) -> EventIdentity:
    return EventIdentity(str(payload.get("id") or ""), "echo", str(payload.get("id") or ""))


def no_tenant(delivery: WebhookDelivery) -> int | None:
    return None


def _declare(provider: str):
    return webhook(
        provider=provider,
        signature_header="X-Echo-Signature",
        verify=verify,
        secret=ECHO_SECRET,
        identify=identify,
        claimed_tenant=no_tenant,
        sandbox_signer="tests.dummy_server.webhooks.sign_webhook",
        signature_max_chars=64,
    )


@_declare("echohook")
def handle(event) -> str:
    return "echoed"
