"""One Stripe call's tenant: its company, its credential (the shared rule in mcp_core.tenancy)
and client, and the checks that keep every object inside the tenant's own Stripe customer."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

import msgspec

from mcp_core.contracts import ErrorCode, MCPError, OperationContext

from . import client as stripe_api
from .client import StripeCredentials, credentials_for, stripe_client

_HEADER_SAFE = re.compile(r"^[\x21-\x7e]{1,100}$")


def callers_idempotency_key(ctx: OperationContext) -> str | None:
    """The caller's idempotency key, made safe for an HTTP header and our namespace: a long
    key or one with spaces or non-ASCII characters is replaced by its SHA-256."""
    key = ctx.request.idempotency_key
    if not key:
        return None
    return key if _HEADER_SAFE.match(key) else hashlib.sha256(key.encode()).hexdigest()


def fingerprint(value: Any) -> str:
    """SHA-256 of a request's params: equal params are the same request when no key is given."""
    return hashlib.sha256(
        json.dumps(msgspec.to_builtins(value), sort_keys=True, default=str).encode()
    ).hexdigest()


class Tenant:
    """What one call needs: the company, its credentials and client, and its Stripe customer."""

    def __init__(self, ctx: OperationContext) -> None:
        self.ctx = ctx
        self.company = ctx.require_tenant()
        self.creds: StripeCredentials = credentials_for(self.company)
        self.client = stripe_client(self.creds)

    @property
    def v1(self) -> Any:
        return self.client.v1

    def fetch(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        """One Stripe call under the deadline; the answer as a plain dict."""
        obj = stripe_api.call(self.ctx, what, fn, *args, **kwargs)
        return obj.to_dict() if hasattr(obj, "to_dict") else obj

    def fetch_replayed(
        self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> tuple[dict, bool]:
        obj = stripe_api.call(self.ctx, what, fn, *args, **kwargs)
        response = getattr(obj, "last_response", None)
        replayed = bool(response and (response.headers or {}).get("Idempotent-Replayed") == "true")
        return obj.to_dict(), replayed

    def customer_id(self) -> str:
        if not self.company.stripe_customer_id:
            raise MCPError(
                ErrorCode.NOT_CONFIGURED,
                "stripe: this tenant has no Stripe customer yet (Company.stripe_customer_id is empty); "
                "create_invoice creates one",
            )
        return self.company.stripe_customer_id

    def key(self, *parts: str) -> str:
        """An idempotency key namespaced by tenant, so equal caller keys of two tenants never meet."""
        return ":".join(["askpro", str(self.company.pk), *parts])[:255]

    def owned(self, what: str, field: str, object_id: str, fn: Callable[..., Any]) -> dict[str, Any]:
        """Retrieve an object and make sure it belongs to this tenant's customer. Another
        tenant's object and a missing one get the same answer, so existence does not leak."""
        not_found = MCPError(
            ErrorCode.NOT_FOUND, f"{field}: no {what} {object_id!r} for this tenant", details={"field": field}
        )
        customer = self.customer_id()
        try:
            obj = self.fetch(f"retrieve {what}", fn, object_id)
        except MCPError as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                raise not_found from None
            raise
        if obj.get("customer") != customer:
            raise not_found
        return obj

    def collect(
        self, what: str, fn: Callable[..., Any], params: dict[str, Any], cap: int
    ) -> tuple[list[dict], bool]:
        """Page through a list (100 per page) up to `cap` objects; True when more were left."""
        found: list[dict] = []
        query = {**params, "limit": min(100, cap)}
        while True:
            page = self.fetch(what, fn, params=query)
            found.extend(page.get("data") or [])
            if not page.get("has_more"):
                return found[:cap], False
            if len(found) >= cap:
                return found[:cap], True
            query["starting_after"] = found[-1]["id"]
