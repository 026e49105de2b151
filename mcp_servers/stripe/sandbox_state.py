"""The Stripe sandbox's state and request plumbing: ids, form decoding (bracket notation),
Stripe's error shape, parameter checks and the fake account that holds the objects."""

from __future__ import annotations

import itertools
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

import stripe

DOC_URL = "https://stripe.com/docs/error-codes"
# The version the official library (and so our client) sends: one definition for both sides.
API_VERSION = stripe.api_version


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


# --- form decoding --------------------------------------------------------------------------

BRACKETS = re.compile(r"\[([^\]]*)\]")


class FormError(ValueError):
    pass


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Turn `a[b][0][c]=v` pairs into nested dicts and lists (indexed keys become lists)."""
    root: dict[str, Any] = {}
    for raw_key, value in pairs:
        head = raw_key.split("[", 1)[0]
        rest = raw_key[len(head) :]
        parts = [head, *BRACKETS.findall(rest)]
        if not head or "".join(f"[{p}]" for p in parts[1:]) != rest:
            raise FormError(f"Invalid parameter name: {raw_key}")
        node = root
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise FormError(f"Invalid array or hash: {raw_key}")
            node = child
        leaf = parts[-1] or str(len(node))  # `a[]=x` appends
        node[leaf] = value
    return listify(root)


def listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: listify(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


# --- errors ---------------------------------------------------------------------------------


class StripeFail(Exception):
    """Raised inside a handler: becomes Stripe's error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"type": type, "message": message}
        if code:
            self.body["code"] = code
            self.body["doc_url"] = f"{DOC_URL}#{code.replace('_', '-')}"
        if param:
            self.body["param"] = param
        self.body.update(extra or {})
        self.headers = headers or {}


def missing_error(kind: str, object_id: str, param: str = "id") -> StripeFail:
    return StripeFail(404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)


def required_error(param: str) -> StripeFail:
    return StripeFail(400, f"Missing required param: {param}.", code="parameter_missing", param=param)


def int_param(params: dict[str, Any], name: str, *, minimum: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise StripeFail(
            400, f"Invalid integer: {value}", code="parameter_invalid_integer", param=name
        ) from None
    if minimum is not None and number < minimum:
        raise StripeFail(
            400,
            f"This value must be greater than or equal to {minimum}.",
            code="parameter_invalid_integer",
            param=name,
        )
    return number


def bool_param(params: dict[str, Any], name: str, default: bool | None = None) -> bool | None:
    value = params.get(name)
    if value is None:
        return default
    if value in ("true", "false"):
        return value == "true"
    raise StripeFail(400, f"Invalid boolean: {value}", code="parameter_invalid_boolean", param=name)


def currency_param(params: dict[str, Any], name: str = "currency") -> str:
    currency = params.get("currency") if isinstance(params, dict) else None
    if not currency:
        raise required_error(name)
    if not re.fullmatch(r"[A-Za-z]{3}", currency):
        raise StripeFail(400, f"Invalid currency: {currency}", code="parameter_invalid_string", param=name)
    return currency.lower()


def check_known(params: dict[str, Any], allowed: set[str]) -> None:
    for name in params:
        if name not in allowed and name != "expand":
            raise StripeFail(400, f"Received unknown parameter: {name}", code="parameter_unknown", param=name)


def metadata_param(params: dict[str, Any], current: dict[str, str] | None = None) -> dict[str, str]:
    raw = params.get("metadata")
    merged = dict(current or {})
    if raw is None:
        return merged
    if raw == "":
        return {}
    if not isinstance(raw, dict):
        raise StripeFail(400, "Invalid hash", code="parameter_invalid_hash", param="metadata")
    for key, value in raw.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


# --- the fake account -----------------------------------------------------------------------


@dataclass
class Account:
    """One Stripe account (one secret key): its objects and stored idempotent responses."""

    livemode: bool
    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # key -> (method, path, params fingerprint, status, body, stored at)
    idempotency: dict[str, tuple[str, str, str, int, Any, float]] = field(default_factory=dict)
    in_flight: set[str] = field(default_factory=set)
    window: tuple[int, int] = (0, 0)  # (second, requests in it) for the rate limit
    invoice_counter: itertools.count = field(default_factory=lambda: itertools.count(1))
    events: list[dict[str, Any]] = field(default_factory=list)

    def table(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.objects.setdefault(kind, {})


seq = itertools.count()
