"""One signature verifier per provider, exactly as each provider specifies it
(reference/upstream-apis.md). Each raises SignatureError with a short reason; none of them
ever accepts a delivery without a secret, and none logs the secret or the signature."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from typing import Any

import stripe

STRIPE_TOLERANCE_S = 300  # stripe-python's DEFAULT_TOLERANCE
RETELL_TOLERANCE_MS = 300_000  # ±5 minutes, symmetric (Retell's SDK verifier)
CALCOM_NO_SECRET = "no-secret-provided"  # noqa: S105 - what Cal.com sends when the webhook has no secret
_RETELL_SIGNATURE = re.compile(r"^v=(\d+),d=([0-9a-f]{64})$")


class SignatureError(Exception):
    """The delivery is not authentic. `reason` is a short code for the refusal counter."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def verify_stripe(raw: bytes, header: str | None, secret: str) -> dict[str, Any]:
    """Stripe-Signature `t=..,v1=..` over `t.body`, through the stripe library (300 s tolerance).
    Returns the event as plain JSON data."""
    if not header:
        raise SignatureError("missing_signature")
    if not secret:
        raise SignatureError("no_secret")
    try:
        stripe.Webhook.construct_event(raw.decode("utf-8"), header, secret, tolerance=STRIPE_TOLERANCE_S)
    except stripe.SignatureVerificationError as exc:
        text = str(exc).lower()
        raise SignatureError("stale_timestamp" if "tolerance" in text else "bad_signature") from None
    except (ValueError, UnicodeDecodeError):
        raise SignatureError("bad_payload") from None
    # construct_event returns a StripeObject; the stored payload is the verified JSON itself.
    return _json(raw)


def verify_calcom(raw: bytes, header: str | None, secret: str) -> dict[str, Any]:
    """X-Cal-Signature-256 = hex HMAC-SHA256(secret, raw body); no timestamp, no prefix.
    The literal `no-secret-provided` is refused, whatever our own secret is."""
    if not header:
        raise SignatureError("missing_signature")
    if header == CALCOM_NO_SECRET:
        raise SignatureError("no_secret_provided")
    if not secret:
        raise SignatureError("no_secret")
    expected = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), header.strip().encode()):
        raise SignatureError("bad_signature")
    return _json(raw)


def verify_retell(
    raw: bytes, header: str | None, api_key: str, *, now_ms: int | None = None
) -> dict[str, Any]:
    """x-retell-signature `v=<ms>,d=<hex>`, d = HMAC-SHA256(api_key, body + str(ms)), ±5 min."""
    if not header:
        raise SignatureError("missing_signature")
    if not api_key:
        raise SignatureError("no_secret")
    match = _RETELL_SIGNATURE.match(header.strip())
    if match is None:
        raise SignatureError("malformed_signature")
    stamp, digest = match.group(1), match.group(2)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if abs(now_ms - int(stamp)) > RETELL_TOLERANCE_MS:
        raise SignatureError("stale_timestamp")
    expected = hmac.new(api_key.encode(), raw + stamp.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), digest.encode()):
        raise SignatureError("bad_signature")
    return _json(raw)


def _json(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise SignatureError("bad_payload") from None
    if not isinstance(data, dict):
        raise SignatureError("bad_payload")
    return data


VERIFIERS = {"stripe": verify_stripe, "calcom": verify_calcom, "retell": verify_retell}
SIGNATURE_HEADERS = {
    "stripe": "Stripe-Signature",
    "calcom": "X-Cal-Signature-256",
    "retell": "X-Retell-Signature",
}
