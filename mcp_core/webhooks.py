"""Inbound webhooks, declared by the server whose provider sends them.

A server that receives webhooks keeps them in its own `webhooks.py` and names that module on
its class (`webhooks = "mcp_servers.calcom.webhooks"`), the way it declares operations on it.
In that module one handler per provider is declared with `@webhook(...)`:

    CALCOM_WEBHOOK_SECRET = TenantCredentials(service="calcom", tenant_field="calcom_webhook_secret",
                                              platform_setting="CALCOM_WEBHOOK_SECRET", what="...")

    @webhook(
        provider="calcom",                       # POST /webhooks/calcom, WebhookEvent.provider
        signature_header="X-Cal-Signature-256",
        verify=verify,                           # (WebhookDelivery, secret) -> payload
        secret=CALCOM_WEBHOOK_SECRET,            # platform setting, else the tenant's own field
        identify=identify,                       # (payload, raw body) -> EventIdentity
        claimed_tenant=claimed_tenant,           # (unverified WebhookDelivery) -> company id | None
        sandbox_signer="mcp_servers.calcom.sandbox.sign_webhook",
    )
    def handle(event) -> str: ...               # a stored WebhookEvent -> a short note

The registry (`mcp_core.registry`) imports those modules and keeps every declaration by
provider; the webhooks app (ingestion, queue, replay, admin) finds providers there only, so it
imports no other server. What each part must do:

- `verify(delivery, secret)` checks the signature exactly as the provider specifies, from the
  `WebhookDelivery` (raw body, all headers, the URL the provider called, the declared
  signature header's value), and returns the payload to store (a JSON body through
  `verified_json`; a form-encoded one as a dict); it raises `SignatureError` with a reason
  from `REASONS`, never accepts a delivery without a secret, never logs one.
- `secret` (an `mcp_core.tenancy.TenantCredentials`) names the platform setting tried first
  and the Company field holding a tenant's own secret, tried when the platform's did not match.
- `claimed_tenant(delivery)` reads the *unverified* delivery (`unverified_json` helps) only to
  pick which tenant's secret to try.
- `identify` gives the provider's event id, the event type and the idempotency key: a second
  delivery with the same key is a duplicate (counted, never processed twice).
- `handle(event)` applies a stored event idempotently and may set `event.tenant_id`; raising
  (e.g. `HandlerError`) means "try again later": retried with backoff, then dead-lettered.
- `answer(payload)` (optional) answers a delivery synchronously instead of storing it when it
  returns a dict (Retell's call_inbound); None means "store and acknowledge as usual".
- `signature_max_chars` bounds the signature header; the request-limits middleware refuses a
  longer one with 400 before the view runs.
- `sandbox_signer` is the dotted path of the provider sandbox's `sign_webhook(body, secret)`,
  which tests and `run_sandbox` use to send signed deliveries.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, NamedTuple

from django.conf import settings
from django.utils.dateparse import parse_datetime

from .limits import json_too_deep, shown, string_problem
from .tenancy import TenantCredentials

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


class HandlerError(Exception):
    """The event cannot be applied (yet): retried with backoff, then dead-lettered."""


class EventIdentity(NamedTuple):
    """What identifies a verified delivery: the provider's id, its type, and the key that
    makes a redelivery a duplicate (unique per provider)."""

    event_id: str
    type: str
    idempotency_key: str


@dataclass(frozen=True)
class WebhookDelivery:
    """One delivery as it arrived: the raw body, the headers (case-insensitive, as Django's
    request.headers), the absolute URL the provider called (with its query; Twilio signs it),
    and the value of the declared signature header (None when absent)."""

    body: bytes
    headers: Mapping[str, str]
    url: str = ""
    signature: str | None = None


@dataclass(frozen=True)
class InboundWebhook:
    """One provider's inbound webhook, declared with `@webhook` (see the module docstring)."""

    provider: str
    signature_header: str
    verify: Callable[[WebhookDelivery, str], dict[str, Any]]
    secret: TenantCredentials
    identify: Callable[[dict[str, Any], bytes], EventIdentity]
    claimed_tenant: Callable[[WebhookDelivery], int | None]
    handle: Callable[[Any], str]
    answer: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None
    sandbox_signer: str = ""
    # The longest signature header taken; a longer one is refused at the door (mcp_core.limits).
    signature_max_chars: int = 1024
    service: str = ""  # the server that declared it, filled in by the registry


def webhook(
    *,
    provider: str,
    signature_header: str,
    verify: Callable[[WebhookDelivery, str], dict[str, Any]],
    secret: TenantCredentials,
    identify: Callable[[dict[str, Any], bytes], EventIdentity],
    claimed_tenant: Callable[[WebhookDelivery], int | None],
    answer: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
    sandbox_signer: str = "",
    signature_max_chars: int = 1024,
) -> Callable[[Callable[[Any], str]], Callable[[Any], str]]:
    """Declare `handle(event) -> str` as the handler of `provider`'s inbound webhooks."""

    def decorator(func: Callable[[Any], str]) -> Callable[[Any], str]:
        func.__mcp_webhook__ = InboundWebhook(  # type: ignore[attr-defined]
            provider=provider,
            signature_header=signature_header,
            verify=verify,
            secret=secret,
            identify=identify,
            claimed_tenant=claimed_tenant,
            handle=func,
            answer=answer,
            sandbox_signer=sandbox_signer,
            signature_max_chars=signature_max_chars,
        )
        return func

    return decorator


def declared_webhooks(module: ModuleType) -> list[InboundWebhook]:
    """The `@webhook` declarations of a module, in provider order."""
    found = {
        id(attr.__mcp_webhook__): attr.__mcp_webhook__
        for attr in vars(module).values()
        if isinstance(getattr(attr, "__mcp_webhook__", None), InboundWebhook)
    }
    return sorted(found.values(), key=lambda hook: hook.provider)


# --- for verifiers ---
def check_tolerance(stamp_s: float, tolerance_s: float, now_s: float) -> None:
    """Refuse a signature timestamp outside the tolerance, in both directions."""
    if now_s - stamp_s > tolerance_s:
        raise SignatureError(
            "stale_timestamp", f"the signature's timestamp is more than {tolerance_s:g} s old"
        )
    if stamp_s - now_s > tolerance_s:
        raise SignatureError(
            "future_timestamp", f"the signature's timestamp is more than {tolerance_s:g} s in the future"
        )


# Escapes that decode to text PostgreSQL's jsonb cannot hold: NUL and (lone) surrogates.
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {shown(text, 40)} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def verified_json(raw: bytes) -> dict[str, Any]:
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


def unverified_json(raw: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, not yet verified: only for choosing which secret to try."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


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


# --- for handlers ---
def ms_to_datetime(value: Any) -> dt.datetime | None:
    """An aware datetime from epoch milliseconds; anything else gives None."""
    if isinstance(value, int | float) and value > 0:
        return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC)
    return None


def parse_iso(value: Any) -> dt.datetime | None:
    """An aware datetime from ISO text (a trailing Z allowed); naive or bad input gives None."""
    if not isinstance(value, str) or not value:
        return None
    parsed = parse_datetime(value.replace("Z", "+00:00"))
    if parsed is None or parsed.tzinfo is None:
        return None
    return parsed
