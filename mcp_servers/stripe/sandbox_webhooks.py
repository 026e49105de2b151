"""Webhook signing and event envelopes of the Stripe sandbox (also used by tests and benches
to build deliveries)."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from .sandbox_state import new_id

API_VERSION = "2026-10-28.endive"  # what stripe 16.1.0 pins; any well-formed version is accepted


def sign_webhook(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Headers for a webhook delivery: `Stripe-Signature: t=<unix s>,v1=<hex HMAC-SHA256>`,
    computed over `f"{t}.{body}"` with the whole `whsec_...` string as the key."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    signed = f"{t}.".encode() + body
    signature = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={t},v1={signature}", "Content-Type": "application/json; charset=utf-8"}


def make_event(event_type: str, data_object: dict[str, Any], *, previous: dict | None = None) -> dict:
    """An event envelope as Stripe sends it."""
    data: dict[str, Any] = {"object": data_object}
    if previous:
        data["previous_attributes"] = previous
    return {
        "id": new_id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": int(time.time()),
        "data": data,
        "livemode": bool(data_object.get("livemode", False)),
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
