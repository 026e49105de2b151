"""The front door of every Stripe sandbox route and the object store the routes share.

Every /v1 handler runs through `_api`: authentication (Bearer or Basic `sk_` keys, one fake
account per key), the Stripe-Version shape, form bodies in bracket notation (JSON refused),
the per-key rate limit and idempotency keys (replay, conflict, in flight). The resource
mixins (sandbox_customers.py, sandbox_invoices.py, ...) build on `_store`, `_get`, `_list`
with Stripe's cursors and `_render`.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from mcp_core.sandbox import SandboxRequest, SandboxResponse, SandboxServer, route

from .sandbox_state import (
    API_VERSION,
    Account,
    FormError,
    StripeFail,
    check_known,
    decode_form,
    int_param,
    missing_error,
    new_id,
    required_error,
    seq,
)

_VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$")
_KEY_RE = re.compile(r"^(sk|rk)_(test|live)_[A-Za-z0-9_]{6,}$")

Handler = Callable[[Account, dict[str, Any], SandboxRequest], tuple[int, Any]]


def stripe_call(func: Callable[..., tuple[int, Any]]) -> Callable[[Any, SandboxRequest], SandboxResponse]:
    """Declare a /v1 route by its handler `(self, account, params, request) -> (status, body)`:
    the route runs it behind the front door (StripeApi._api), under the sandbox's lock."""

    @functools.wraps(func)
    def serve(self: StripeApi, request: SandboxRequest) -> SandboxResponse:
        return self._api(request, functools.partial(func, self))

    return serve


def retrieve_route(pattern: str, kind: str) -> Callable[[Any, SandboxRequest], SandboxResponse]:
    """GET /v1/<objects>/<id>: one object of the account, as Stripe renders it."""

    @route("GET", pattern)
    @stripe_call
    def retrieve(
        self: StripeApi, account: Account, params: dict[str, Any], req: SandboxRequest
    ) -> tuple[int, Any]:
        return 200, self._render(account, self._get(account, kind, req.params["id"]))

    return retrieve


class StripeApi(SandboxServer):
    """Stripe's request handling and object store; StripeSandbox (sandbox.py) sets the state."""

    service = "stripe"
    accounts: dict[str, Account]  # api key -> its fake account
    api_keys: set[str] | None  # None: any well-formed sk_test_/sk_live_ key is an account of its own
    revoked_keys: set[str]
    rate_limit_per_second: int | None
    idempotency_ttl: float

    def _emit(self, account: Account, event_type: str, obj: dict[str, Any]) -> None:
        """Record an event (StripeWebhooks records it and sends it to the webhook endpoints)."""
        raise NotImplementedError

    # --- test helpers (direct state access, no HTTP) ---
    def account(self, api_key: str) -> Account:
        with self.lock:
            account = self.accounts.get(api_key)
            if account is None:
                account = self.accounts[api_key] = Account(livemode="_live_" in api_key)
            return account

    def objects(self, api_key: str, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [self._public(o) for o in self.account(api_key).table(kind).values()]

    # --- hooks of the base ---
    def fault_body(self, status: int) -> Any:
        kind = "api_error" if status >= 500 else "invalid_request_error"
        body: dict[str, Any] = {"type": kind, "message": f"Injected sandbox fault ({status})."}
        if status == 429:
            body["code"] = "rate_limit"
        return {"error": body}

    def not_found(self, request: SandboxRequest) -> SandboxResponse:
        return self._error(
            StripeFail(
                404,
                f"Unrecognized request URL ({request.method}: {request.path}). Please see "
                "https://stripe.com/docs or we can help at https://support.stripe.com/.",
            )
        )

    def _handle(self, request: SandboxRequest) -> SandboxResponse:
        response = super()._handle(request)
        response.headers.setdefault("Request-Id", new_id("req"))
        response.headers.setdefault("Stripe-Version", request.headers.get("stripe-version") or API_VERSION)
        if response.status == 429:
            response.headers.setdefault("Retry-After", "1")
            response.headers.setdefault("Stripe-Should-Retry", "false")
        return response

    def _error(self, fail: StripeFail) -> SandboxResponse:
        return SandboxResponse(fail.status, {"error": fail.body}, dict(fail.headers))

    # --- the front door of every /v1 call ---
    def _api(
        self,
        request: SandboxRequest,
        handler: Handler,
    ) -> SandboxResponse:
        try:
            api_key = self._authenticate(request)
            version = request.headers.get("stripe-version")
            if version is not None and not _VERSION_RE.match(version):
                raise StripeFail(400, f"Invalid Stripe API version: {version}", code="invalid_api_version")
            params = self._params(request)
            account = self.account(api_key)
            self._rate_limit(account)
        except StripeFail as fail:
            return self._error(fail)
        key = request.headers.get("idempotency-key")
        if request.method != "POST" or not key:
            return self._run(handler, account, params, request)
        return self._idempotent(account, key, handler, params, request)

    def _authenticate(self, request: SandboxRequest) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        api_key = ""
        if scheme.lower() == "bearer":
            api_key = credential.strip()
        elif scheme.lower() == "basic":
            try:
                api_key = base64.b64decode(credential.strip()).decode().split(":", 1)[0]
            except (ValueError, UnicodeDecodeError):
                api_key = ""
        if not api_key:
            raise StripeFail(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            )
        valid = _KEY_RE.match(api_key) is not None
        if valid and self.api_keys is not None:
            valid = api_key in self.api_keys
        if not valid or api_key in self.revoked_keys:
            masked = f"{api_key[:8]}{'*' * 12}{api_key[-4:]}" if len(api_key) > 12 else "****"
            raise StripeFail(401, f"Invalid API Key provided: {masked}")
        return api_key

    def _params(self, request: SandboxRequest) -> dict[str, Any]:
        try:
            if request.method in ("GET", "DELETE"):
                pairs = [(k, v) for k, values in request.query.items() for v in values]
                return decode_form(pairs)
            content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if request.body and content_type != "application/x-www-form-urlencoded":
                # Stripe's v1 API only reads form bodies; a JSON body is refused, not guessed at.
                raise StripeFail(
                    400,
                    f"Invalid request: the Content-Type {content_type or '(none)'!r} is not supported. "
                    "Stripe's v1 API takes application/x-www-form-urlencoded bodies "
                    "(see https://stripe.com/docs/api/request_format).",
                )
            query = [(k, v) for k, values in request.query.items() for v in values]
            body = parse_qsl(request.body.decode(), keep_blank_values=True, strict_parsing=bool(request.body))
            return decode_form(query + body)
        except (FormError, ValueError, UnicodeDecodeError) as exc:
            if isinstance(exc, StripeFail):
                raise
            raise StripeFail(400, f"Invalid request body: {exc}") from None

    def _rate_limit(self, account: Account) -> None:
        if not self.rate_limit_per_second:
            return
        with self.lock:
            now = int(time.time())
            second, count = account.window
            count = count + 1 if second == now else 1
            account.window = (now, count)
        if count > self.rate_limit_per_second:
            raise StripeFail(
                429,
                "Request rate limit exceeded. Learn more about rate limits here "
                "https://stripe.com/docs/rate-limits.",
                code="rate_limit",
                headers={"Retry-After": "1", "Stripe-Should-Retry": "false"},
            )

    def _run(
        self,
        handler: Handler,
        account: Account,
        params: dict[str, Any],
        request: SandboxRequest,
    ) -> SandboxResponse:
        try:
            with self.lock:  # one account's state changes atomically, like a database transaction
                status, body = handler(account, params, request)
        except StripeFail as fail:
            return self._error(fail)
        return SandboxResponse(status, body)

    def _idempotent(
        self,
        account: Account,
        key: str,
        handler: Handler,
        params: dict[str, Any],
        request: SandboxRequest,
    ) -> SandboxResponse:
        if len(key) > 255:
            return self._error(
                StripeFail(
                    400, "Idempotency-Key must be at most 255 characters long.", type="idempotency_error"
                )
            )
        fingerprint = json.dumps(params, sort_keys=True)
        with self.lock:
            stored = account.idempotency.get(key)
            if stored is not None and time.time() - stored[5] >= self.idempotency_ttl:
                del account.idempotency[key]  # pruned: the key makes a fresh request again
                stored = None
            if stored is None:
                if key in account.in_flight:
                    return self._error(
                        StripeFail(
                            409,
                            "There is currently another in-progress request using this Idempotent Key "
                            "(that probably means you submitted twice, and the other request is still "
                            "going through). Please try again later.",
                            code="idempotency_key_in_use",
                        )
                    )
                account.in_flight.add(key)
        if stored is not None:
            method, path, stored_params, status, body, _ = stored
            if (method, path, stored_params) != (request.method, request.path, fingerprint):
                return self._error(
                    StripeFail(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters they "
                        f"were first used with. Try using a key other than '{key}' if you meant to "
                        "execute a different request.",
                        type="idempotency_error",
                    )
                )
            return SandboxResponse(status, body, {"Idempotent-Replayed": "true", "Idempotency-Key": key})
        try:
            response = self._run(handler, account, params, request)
            # Stripe keeps the result once the endpoint ran, 500s included; validation
            # failures (4xx) are not kept, so a corrected retry with the same key works.
            if response.status < 400 or response.status >= 500:
                with self.lock:
                    account.idempotency[key] = (
                        request.method,
                        request.path,
                        fingerprint,
                        response.status,
                        response.body,
                        time.time(),
                    )
            response.headers["Idempotency-Key"] = key
            return response
        finally:
            with self.lock:
                account.in_flight.discard(key)

    # --- object helpers ---
    def _public(self, obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    def _store(self, account: Account, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        obj.setdefault("created", int(time.time()))
        obj["livemode"] = account.livemode
        obj["seq"] = next(seq)
        account.table(kind)[obj["id"]] = obj
        return obj

    def _get(self, account: Account, kind: str, object_id: str, *, param: str = "id") -> dict[str, Any]:
        obj = account.table(kind).get(object_id)
        if obj is None:
            raise missing_error(kind, object_id, param)
        return obj

    def _list(
        self,
        account: Account,
        kind: str,
        params: dict[str, Any],
        url: str,
        allowed: set[str],
        keep: Callable[[dict[str, Any]], bool] = lambda o: True,
    ) -> tuple[int, Any]:
        check_known(params, allowed | {"limit", "starting_after", "ending_before", "created"})
        limit = int_param(params, "limit", minimum=1)
        limit = 10 if limit is None else limit
        if limit > 100:
            raise StripeFail(
                400,
                "This value must be less than or equal to 100.",
                code="parameter_invalid_integer",
                param="limit",
            )
        items = sorted(account.table(kind).values(), key=lambda o: o["seq"], reverse=True)  # newest first
        items = [o for o in items if keep(o) and _created_matches(o, params.get("created"))]
        after, before = params.get("starting_after"), params.get("ending_before")
        if after and before:
            raise StripeFail(
                400, "You may only specify one of these parameters: ending_before, starting_after."
            )
        if after or before:
            cursor = after or before
            ids = [o["id"] for o in items]
            if cursor not in ids:
                if cursor not in account.table(kind):
                    raise missing_error(kind, cursor, "starting_after" if after else "ending_before")
                anchor_seq = account.table(kind)[cursor]["seq"]
                position = sum(1 for o in items if o["seq"] > anchor_seq)
            else:
                position = ids.index(cursor) + (1 if after else 0)
            if after:
                page, has_more = items[position : position + limit], len(items) > position + limit
            else:
                start = max(0, position - limit)
                page, has_more = items[start:position], start > 0
        else:
            page, has_more = items[:limit], len(items) > limit
        return 200, {
            "object": "list",
            "url": url,
            "has_more": has_more,
            "data": [self._render(account, o) for o in page],
        }

    def _render(self, account: Account, obj: dict[str, Any]) -> dict[str, Any]:
        """The public view of an object (derived fields computed on the way out)."""
        public = self._public(obj)
        if obj.get("object") == "invoice":
            lines = [self._public(i) for i in self._invoice_items(account, obj["id"])]
            public["lines"] = {
                "object": "list",
                "url": f"/v1/invoices/{obj['id']}/lines",
                "has_more": False,
                "data": [_line_from_item(i) for i in lines],
            }
        return json.loads(json.dumps(public))

    def _invoice_items(self, account: Account, invoice_id: str) -> list[dict[str, Any]]:
        items = [i for i in account.table("invoiceitem").values() if i.get("invoice") == invoice_id]
        return sorted(items, key=lambda i: i["seq"])

    def _customer_id(self, account: Account, params: dict[str, Any], *, required: bool = True) -> str | None:
        customer = params.get("customer")
        if not customer:
            if required:
                raise required_error("customer")
            return None
        if customer not in account.table("customer") or account.table("customer")[customer].get("deleted"):
            raise missing_error("customer", customer, "customer")
        return customer


def _created_matches(obj: dict[str, Any], created: Any) -> bool:
    if created is None:
        return True
    if isinstance(created, str):
        return obj["created"] == int(created)
    checks = {"gt": int.__gt__, "gte": int.__ge__, "lt": int.__lt__, "lte": int.__le__}
    return all(checks[op](obj["created"], int(value)) for op, value in created.items() if op in checks)


def _line_from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"il_{item['id'][3:]}",
        "object": "line_item",
        "amount": item["amount"],
        "currency": item["currency"],
        "description": item["description"],
        "quantity": item["quantity"],
        "metadata": item["metadata"],
        "parent": {"type": "invoice_item_details", "invoice_item_details": {"invoice_item": item["id"]}},
    }
