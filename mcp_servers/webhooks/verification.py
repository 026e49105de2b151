"""One signature verifier per provider, exactly as each provider specifies it
(reference/upstream-apis.md). Each raises SignatureError with a short reason; none of them
ever accepts a delivery without a secret, and none logs the secret or the signature.

Signature headers are checked for length and shape before anything is parsed out of them (a
4,301-digit timestamp is a ValueError in int()), and timestamps must lie within the tolerance
in both directions: Stripe's library only refuses old ones, we refuse future ones too."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import time
from typing import Any

import stripe
from django.conf import settings

from mcp_core.limits import json_too_deep, shown, string_problem

STRIPE_TOLERANCE_S = 300  # stripe-python's DEFAULT_TOLERANCE
RETELL_TOLERANCE_MS = 300_000  # ±5 minutes, symmetric (Retell's SDK verifier)
CALCOM_NO_SECRET = "no-secret-provided"  # noqa: S105 - what Cal.com sends when the webhook has no secret
# Timestamps: at most 13 digits (milliseconds until the year 2286), so int() is always cheap.
_RETELL_SIGNATURE = re.compile(r"^v=(\d{1,13}),d=([0-9a-f]{64})$")
_CALCOM_SIGNATURE = re.compile(r"^[0-9a-fA-F]{64}$")
_STRIPE_ITEM = re.compile(r"^([a-z][a-z0-9]{0,7})=([A-Za-z0-9_]{1,128})$")
_STRIPE_MAX_ITEMS = 16
SIGNATURE_MAX_CHARS = 1024
# What the sender is told, per reason (the reason itself is the refusal counter's key).
REASONS = {
    "missing_signature": "the signature header is missing",
    "no_secret": "no webhook secret is configured for this provider",
    "no_secret_provided": "the sender has no secret for this webhook ('no-secret-provided')",
    "malformed_signature": "the signature header does not have the provider's format",
    "bad_signature": "the signature does not match the body",
    "stale_timestamp": "the signature's timestamp is older than the tolerance",
    "future_timestamp": "the signature's timestamp is further in the future than the tolerance",
    "bad_payload": "the body is not a JSON object that can be stored",
}


class SignatureError(Exception):
    """The delivery is not authentic, or its body cannot be taken. `reason` is a short code for
    the refusal counter; `detail` (optional) says what exactly, for the sender."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail

    @property
    def message(self) -> str:
        return self.detail or REASONS.get(self.reason, self.reason)


def _check_tolerance(stamp_s: float, tolerance_s: float, now_s: float) -> None:
    if now_s - stamp_s > tolerance_s:
        raise SignatureError(
            "stale_timestamp", f"the signature's timestamp is more than {tolerance_s:g} s old"
        )
    if stamp_s - now_s > tolerance_s:
        raise SignatureError(
            "future_timestamp", f"the signature's timestamp is more than {tolerance_s:g} s in the future"
        )


def _stripe_timestamp(header: str) -> int:
    """The `t` of a Stripe-Signature header whose shape is sound: comma-separated key=value
    items, one `t` of at most 12 digits, at least one `v1`."""
    if len(header) > SIGNATURE_MAX_CHARS:
        raise SignatureError(
            "malformed_signature", f"the signature header is longer than {SIGNATURE_MAX_CHARS}"
        )
    items = header.split(",")
    if len(items) > _STRIPE_MAX_ITEMS:
        raise SignatureError("malformed_signature")
    pairs = [_STRIPE_ITEM.match(item.strip()) for item in items]
    if not all(pairs):
        raise SignatureError("malformed_signature")
    stamps = [m.group(2) for m in pairs if m.group(1) == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit() or len(stamps[0]) > 12:
        raise SignatureError("malformed_signature", "the signature header needs one t=<unix seconds>")
    if not any(m.group(1) == "v1" for m in pairs):
        raise SignatureError("malformed_signature", "the signature header has no v1 signature")
    return int(stamps[0])


def verify_stripe(raw: bytes, header: str | None, secret: str) -> dict[str, Any]:
    """Stripe-Signature `t=..,v1=..` over `t.body`, through the stripe library (300 s tolerance).
    Returns the event as plain JSON data."""
    if not header:
        raise SignatureError("missing_signature")
    if not secret:
        raise SignatureError("no_secret")
    _check_tolerance(_stripe_timestamp(header), STRIPE_TOLERANCE_S, time.time())
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SignatureError("bad_payload", f"body: not valid UTF-8 (byte {exc.start})") from None
    try:
        # The signature only: the stored payload is the verified JSON itself (_json), parsed
        # once, under our depth and content checks.
        stripe.WebhookSignature.verify_header(text, header, secret, tolerance=STRIPE_TOLERANCE_S)
    except stripe.SignatureVerificationError as exc:
        reason = "stale_timestamp" if "tolerance" in str(exc).lower() else "bad_signature"
        raise SignatureError(reason) from None
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
    if not _CALCOM_SIGNATURE.match(header.strip()):
        raise SignatureError("malformed_signature", "the signature header must be 64 hexadecimal digits")
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
    match = _RETELL_SIGNATURE.match(header.strip()) if len(header) <= SIGNATURE_MAX_CHARS else None
    if match is None:
        raise SignatureError(
            "malformed_signature", "the signature header must be v=<unix ms>,d=<64 hex digits>"
        )
    stamp, digest = match.group(1), match.group(2)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    _check_tolerance(int(stamp) / 1000, RETELL_TOLERANCE_MS / 1000, now_ms / 1000)
    expected = hmac.new(api_key.encode(), raw + stamp.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), digest.encode()):
        raise SignatureError("bad_signature")
    return _json(raw)


# Escapes that decode to text PostgreSQL's jsonb cannot hold: NUL and (lone) surrogates.
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {shown(text, 40)} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json(raw: bytes) -> dict[str, Any]:
    """The verified body as a JSON object that can be stored as it is: not deeper than
    REQUEST_MAX_JSON_DEPTH, every number finite, no NUL or lone surrogate anywhere. A body
    that fails is refused (bad_payload), never stored in part or altered."""
    depth = settings.REQUEST_MAX_JSON_DEPTH
    if json_too_deep(raw, depth):
        raise SignatureError("bad_payload", f"body: JSON nested deeper than {depth} levels")
    try:
        data = json.loads(raw, parse_float=_finite, parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise SignatureError("bad_payload", f"body: not valid UTF-8 (byte {exc.start})") from None
    except ValueError as exc:
        raise SignatureError("bad_payload", f"body: not valid JSON ({shown(str(exc), 200)})") from None
    if not isinstance(data, dict):
        raise SignatureError("bad_payload", "body: must be a JSON object")
    if _SUSPECT_ESCAPE.search(raw):
        found = _unstorable(data)
        if found is not None:
            path, problem = found
            raise SignatureError("bad_payload", f"{shown(path, 200) or 'body'}: {problem}")
    return data


def _unstorable(data: Any) -> tuple[str, str] | None:
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            problem = string_problem(value)
            if problem:
                return path, problem
        elif isinstance(value, dict):
            for key, item in value.items():
                sub = f"{path}.{key}" if path else key
                problem = string_problem(key)
                if problem:
                    return sub, f"name {problem}"
                stack.append((item, sub))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{index}]") for index, item in enumerate(value))
    return None


VERIFIERS = {"stripe": verify_stripe, "calcom": verify_calcom, "retell": verify_retell}
SIGNATURE_HEADERS = {
    "stripe": "Stripe-Signature",
    "calcom": "X-Cal-Signature-256",
    "retell": "X-Retell-Signature",
}
