"""A stateful fake of the Stripe API (v1) that the official `stripe` library talks to unchanged.

It follows the contract in reference/upstream-apis.md §3: `/v1/...` paths, `sk_` keys as Bearer
or Basic auth (one fake account per key), form-encoded bodies with bracket notation (JSON bodies
are refused), `Stripe-Version` checked for shape, Stripe's error body, list objects with
`has_more`/`starting_after`/`ending_before`, idempotency keys (replay with
`Idempotent-Replayed: true`, another use with other params -> 400 idempotency_error, in flight
-> 409), a per-key request rate limit (429), and signed webhooks (`Stripe-Signature`).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import requests

from mcp_core.sandbox import SandboxRequest, SandboxResponse, SandboxServer, route

from .sandbox_state import (
    Account,
    FormError,
    StripeFail,
    bool_param,
    check_known,
    decode_form,
    int_param,
    metadata_param,
    missing_error,
    new_id,
    required_error,
    seq,
)
from .sandbox_webhooks import API_VERSION, make_event, sign_webhook

__all__ = ["DEMO_API_KEY", "SANDBOX_CLASS", "StripeSandbox", "decode_form", "make_event", "sign_webhook"]

_VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$")
_KEY_RE = re.compile(r"^(sk|rk)_(test|live)_[A-Za-z0-9_]{6,}$")
# The demo key askpro/settings.py uses for STRIPE_SECRET_KEY when SANDBOX=1, and the Stripe
# customers askpro/demo.py gives the demo tenants (Company.stripe_customer_id).
DEMO_API_KEY = "sk_test_sandbox_demo"
DEMO_CUSTOMERS = (("cus_demo1", "Salon Sonnenschein"), ("cus_demo2", "Physiotherapie Praxis Weber"))


class StripeSandbox(SandboxServer):
    """Stateful Stripe v1 fake: customers, products/prices, invoice items, invoices, payment
    intents, charges, refunds, subscriptions, balance, events, idempotency and webhooks."""

    service = "stripe"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_keys: set[str] | None = None,
        rate_limit_per_second: int | None = 100,
        demo: bool = True,
    ) -> None:
        super().__init__(host, port)
        # None: any well-formed sk_test_/sk_live_ key is an account of its own.
        self.api_keys = api_keys
        self.revoked_keys: set[str] = set()
        self.rate_limit_per_second = rate_limit_per_second
        self.idempotency_ttl = 24 * 3600.0  # Stripe prunes keys once they are at least 24 h old
        self.accounts: dict[str, Account] = {}
        self.webhook_endpoints: list[tuple[str, str]] = []  # (url, secret): every event is sent
        self.sent_webhooks: list[dict[str, Any]] = []
        if demo:
            self._seed_demo()

    def reset(self, *, demo: bool = False) -> None:
        """Forget every account, fault, logged request and webhook (between tests)."""
        with self.lock:
            self.accounts.clear()
            self.faults.clear()
            self.request_log.clear()
            self.webhook_endpoints.clear()
            self.sent_webhooks.clear()
            self.revoked_keys.clear()
        if demo:
            self._seed_demo()

    def describe(self) -> str:
        return f"demo key {DEMO_API_KEY}; customers {', '.join(c for c, _ in DEMO_CUSTOMERS)} with invoices"

    def _seed_demo(self) -> None:
        """A little state for the demo key: the demo tenants as customers, each with a monthly
        subscription, three paid invoices (with their charges) and one open invoice."""
        account = self.account(DEMO_API_KEY)
        product = self._store(
            account,
            "product",
            {"id": "prod_demo_receptionist", "object": "product", "name": "AskPro AI receptionist",
             "description": None, "active": True, "metadata": {}},
        )  # fmt: skip
        price = self._store(
            account,
            "price",
            {"id": "price_demo_monthly", "object": "price", "active": True, "currency": "eur",
             "unit_amount": 4900, "product": product["id"], "nickname": "Monthly", "type": "recurring",
             "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"}, "metadata": {}},
        )  # fmt: skip
        self._store(
            account,
            "price",
            {"id": "price_demo_yearly", "object": "price", "active": True, "currency": "eur",
             "unit_amount": 49000, "product": product["id"], "nickname": "Yearly", "type": "recurring",
             "recurring": {"interval": "year", "interval_count": 1, "usage_type": "licensed"}, "metadata": {}},
        )  # fmt: skip
        now = int(time.time())
        for index, (customer_id, name) in enumerate(DEMO_CUSTOMERS):
            self._store(
                account,
                "customer",
                {"id": customer_id, "object": "customer", "email": f"billing{index + 1}@demo.example",
                 "name": name, "phone": None, "description": None, "address": None, "balance": 0,
                 "currency": "eur", "delinquent": False, "invoice_prefix": f"DEMO{index + 1}",
                 "invoice_settings": {"default_payment_method": None}, "metadata": {}},
            )  # fmt: skip
            self._store(
                account,
                "subscription",
                {"id": f"sub_demo{index + 1}", "object": "subscription", "customer": customer_id,
                 "status": "active", "currency": "eur",
                 "items": {"object": "list", "has_more": False, "url": "/v1/subscription_items",
                           "data": [{**self._subscription_item(account, price["id"], 1, now - 5 * 86400),
                                     "id": f"si_demo{index + 1}"}]},
                 "cancel_at_period_end": False, "cancel_at": None, "canceled_at": None, "ended_at": None,
                 "pause_collection": None, "start_date": now - 95 * 86400, "trial_end": None,
                 "collection_method": "charge_automatically", "metadata": {}},
            )  # fmt: skip
            for month in range(4):
                created = now - (3 - month) * 30 * 86400 - 86400
                invoice = self._store(
                    account,
                    "invoice",
                    {"id": f"in_demo{index + 1}_{month + 1}", "object": "invoice", "customer": customer_id,
                     "status": "draft", "currency": "eur", "collection_method": "send_invoice",
                     "auto_advance": False, "description": "AskPro AI receptionist", "due_date": created + 14 * 86400,
                     "number": None, "hosted_invoice_url": None, "invoice_pdf": None, "subtotal": 0, "total": 0,
                     "amount_due": 0, "amount_paid": 0, "amount_remaining": 0, "attempt_count": 0,
                     "metadata": {}, "parent": None, "period_start": created, "period_end": created,
                     "created": created,
                     "status_transitions": {"finalized_at": created, "paid_at": None, "voided_at": None,
                                            "marked_uncollectible_at": None}},
                )  # fmt: skip
                self._store(
                    account,
                    "invoiceitem",
                    {"id": f"ii_demo{index + 1}_{month + 1}", "object": "invoiceitem", "customer": customer_id,
                     "invoice": invoice["id"], "amount": 4900, "currency": "eur", "quantity": 1,
                     "unit_amount": 4900, "description": "AskPro AI receptionist (monthly)", "metadata": {},
                     "date": created, "created": created},
                )  # fmt: skip
                self._recompute(account, invoice)
                invoice.update(
                    status="open",
                    number=f"DEMO{index + 1}-{month + 1:04d}",
                    hosted_invoice_url=f"https://invoice.stripe.com/i/sandbox/{invoice['id']}",
                    invoice_pdf=f"https://pay.stripe.com/invoice/sandbox/{invoice['id']}/pdf",
                )
                if month < 3:  # the last one stays open
                    charge = self._create_charge(
                        account, customer_id, 4900, "eur", f"Payment for invoice {invoice['number']}", {}
                    )
                    charge["created"] = created + 3600
                    invoice.update(status="paid", amount_paid=4900, amount_remaining=0)
                    invoice["status_transitions"]["paid_at"] = created + 3600
        account.events.clear()
        account.table("event").clear()

    # --- webhooks ---
    def send_webhook(
        self, url: str, event_type: str, data_object: dict[str, Any], secret: str, *, timeout: float = 5.0
    ) -> requests.Response:
        """POST a correctly signed event to `url`, as Stripe delivers it."""
        return self.deliver_event(url, make_event(event_type, data_object), secret, timeout=timeout)

    def deliver_event(
        self, url: str, event: dict[str, Any], secret: str, *, timeout: float = 5.0
    ) -> requests.Response:
        body = json.dumps(event, separators=(",", ":")).encode()
        headers = {
            **sign_webhook(body, secret),
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
        response = requests.post(url, data=body, headers=headers, timeout=timeout)
        with self.lock:
            self.sent_webhooks.append({"url": url, "event": event, "status": response.status_code})
        return response

    def add_webhook_endpoint(self, url: str, secret: str) -> None:
        """From now on every event the sandbox records is also delivered to `url` (in a thread)."""
        with self.lock:
            self.webhook_endpoints.append((url, secret))

    def _emit(self, account: Account, event_type: str, obj: dict[str, Any]) -> None:
        event = make_event(event_type, json.loads(json.dumps(obj)))
        account.events.append(event)
        account.table("event")[event["id"]] = event | {"seq": next(seq)}
        for url, secret in list(self.webhook_endpoints):
            threading.Thread(target=self._deliver_quietly, args=(url, event, secret), daemon=True).start()

    def _deliver_quietly(self, url: str, event: dict[str, Any], secret: str) -> None:
        try:
            self.deliver_event(url, event, secret)
        except requests.RequestException:
            with self.lock:
                self.sent_webhooks.append({"url": url, "event": event, "status": None})

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
        handler: Callable[[Account, dict[str, Any], SandboxRequest], tuple[int, Any]],
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
        handler: Callable[[Account, dict[str, Any], SandboxRequest], tuple[int, Any]],
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
        handler: Callable[[Account, dict[str, Any], SandboxRequest], tuple[int, Any]],
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

    # --- balance ---
    @route("GET", "/v1/balance")
    def balance(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], _: SandboxRequest) -> tuple[int, Any]:
            check_known(params, set())
            totals: dict[str, int] = {}
            for charge in account.table("charge").values():
                if charge["status"] == "succeeded":
                    net = charge["amount"] - charge["amount_refunded"]
                    totals[charge["currency"]] = totals.get(charge["currency"], 0) + net
            available = [
                {"amount": amount, "currency": currency, "source_types": {"card": amount}}
                for currency, amount in sorted(totals.items())
            ] or [{"amount": 0, "currency": "usd", "source_types": {"card": 0}}]
            pending = [
                {"amount": 0, "currency": a["currency"], "source_types": {"card": 0}} for a in available
            ]
            return 200, {
                "object": "balance",
                "available": available,
                "pending": pending,
                "connect_reserved": [],
                "livemode": account.livemode,
            }

        return self._api(request, handler)

    # --- customers ---
    @route("POST", "/v1/customers")
    def customer_create(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], _: SandboxRequest) -> tuple[int, Any]:
            check_known(
                params, {"email", "name", "phone", "description", "metadata", "address", "preferred_locales"}
            )
            customer = self._store(
                account,
                "customer",
                {
                    "id": new_id("cus"),
                    "object": "customer",
                    "email": params.get("email"),
                    "name": params.get("name"),
                    "phone": params.get("phone"),
                    "description": params.get("description"),
                    "address": params.get("address"),
                    "balance": 0,
                    "currency": None,
                    "delinquent": False,
                    "invoice_prefix": secrets.token_hex(4).upper(),
                    "invoice_settings": {"default_payment_method": None},
                    "metadata": metadata_param(params),
                },
            )
            self._emit(account, "customer.created", self._render(account, customer))
            return 200, self._render(account, customer)

        return self._api(request, handler)

    @route("GET", "/v1/customers/(?P<id>[^/]+)")
    def customer_retrieve(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], req: SandboxRequest) -> tuple[int, Any]:
            customer = self._get(account, "customer", req.params["id"])
            return 200, self._render(account, customer)

        return self._api(request, handler)

    @route("POST", "/v1/customers/(?P<id>[^/]+)")
    def customer_update(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], req: SandboxRequest) -> tuple[int, Any]:
            check_known(params, {"email", "name", "phone", "description", "metadata", "address"})
            customer = self._get(account, "customer", req.params["id"])
            for name in ("email", "name", "phone", "description", "address"):
                if name in params:
                    customer[name] = params[name] or None
            customer["metadata"] = metadata_param(params, customer["metadata"])
            self._emit(account, "customer.updated", self._render(account, customer))
            return 200, self._render(account, customer)

        return self._api(request, handler)

    @route("DELETE", "/v1/customers/(?P<id>[^/]+)")
    def customer_delete(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], req: SandboxRequest) -> tuple[int, Any]:
            self._get(account, "customer", req.params["id"])
            del account.table("customer")[req.params["id"]]
            return 200, {"id": req.params["id"], "object": "customer", "deleted": True}

        return self._api(request, handler)

    @route("GET", "/v1/customers")
    def customer_list(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], _: SandboxRequest) -> tuple[int, Any]:
            email = params.get("email")
            return self._list(
                account,
                "customer",
                params,
                "/v1/customers",
                {"email"},
                lambda o: not email or o["email"] == email,
            )

        return self._api(request, handler)

    # --- products and prices ---
    @route("POST", "/v1/products")
    def product_create(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], _: SandboxRequest) -> tuple[int, Any]:
            check_known(params, {"name", "description", "metadata", "active"})
            if not params.get("name"):
                raise required_error("name")
            product = self._store(
                account,
                "product",
                {
                    "id": new_id("prod"),
                    "object": "product",
                    "name": params["name"],
                    "description": params.get("description"),
                    "active": bool_param(params, "active", True),
                    "metadata": metadata_param(params),
                },
            )
            return 200, self._render(account, product)

        return self._api(request, handler)

    @route("POST", "/v1/prices")
    def price_create(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], _: SandboxRequest) -> tuple[int, Any]:
            check_known(
                params,
                {"currency", "unit_amount", "recurring", "product", "product_data", "nickname", "metadata"},
            )
            currency = _currency(params)
            unit_amount = int_param(params, "unit_amount", minimum=0)
            if unit_amount is None:
                raise required_error("unit_amount")
            product = params.get("product")
            if product:
                self._get(account, "product", product, param="product")
            elif isinstance(params.get("product_data"), dict) and params["product_data"].get("name"):
                product = self._store(
                    account,
                    "product",
                    {
                        "id": new_id("prod"),
                        "object": "product",
                        "name": params["product_data"]["name"],
                        "description": None,
                        "active": True,
                        "metadata": {},
                    },
                )["id"]
            else:
                raise required_error("product")
            recurring = params.get("recurring")
            if recurring is not None:
                interval = recurring.get("interval") if isinstance(recurring, dict) else None
                if interval not in ("day", "week", "month", "year"):
                    raise StripeFail(
                        400, "Invalid recurring[interval]: must be one of day, week, month, or year",
                        code="parameter_invalid_string", param="recurring[interval]",
                    )  # fmt: skip
                recurring = {
                    "interval": interval,
                    "interval_count": int_param(recurring, "interval_count", minimum=1) or 1,
                    "usage_type": "licensed",
                }
            price = self._store(
                account,
                "price",
                {
                    "id": new_id("price"),
                    "object": "price",
                    "active": True,
                    "currency": currency,
                    "unit_amount": unit_amount,
                    "product": product,
                    "nickname": params.get("nickname"),
                    "recurring": recurring,
                    "type": "recurring" if recurring else "one_time",
                    "metadata": metadata_param(params),
                },
            )
            return 200, self._render(account, price)

        return self._api(request, handler)

    @route("GET", "/v1/prices/(?P<id>[^/]+)")
    def price_retrieve(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], req: SandboxRequest) -> tuple[int, Any]:
            return 200, self._render(account, self._get(account, "price", req.params["id"]))

        return self._api(request, handler)

    # --- invoice items ---
    @route("POST", "/v1/invoiceitems")
    def invoiceitem_create(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], _: SandboxRequest) -> tuple[int, Any]:
            check_known(
                params,
                {"customer", "invoice", "amount", "currency", "price_data", "pricing", "quantity",
                 "description", "metadata", "subscription"},
            )  # fmt: skip
            if "price" in params:
                raise StripeFail(
                    400, "Received unknown parameter: price", code="parameter_unknown", param="price"
                )
            customer = self._customer_id(account, params)
            quantity = int_param(params, "quantity", minimum=1) or 1
            if params.get("amount") is not None:
                currency = _currency(params)
                amount = int_param(params, "amount")
                unit_amount = amount // quantity if quantity else amount
            elif isinstance(params.get("price_data"), dict):
                data = params["price_data"]
                currency = _currency(data, "price_data[currency]")
                unit_amount = int_param(data, "unit_amount", minimum=0)
                if unit_amount is None:
                    raise required_error("price_data[unit_amount]")
                amount = unit_amount * quantity
            elif isinstance(params.get("pricing"), dict) and params["pricing"].get("price"):
                price = self._get(account, "price", params["pricing"]["price"], param="pricing[price]")
                currency, unit_amount = price["currency"], price["unit_amount"]
                amount = unit_amount * quantity
            else:
                raise required_error("amount")
            invoice_id = params.get("invoice")
            if invoice_id:
                invoice = self._get(account, "invoice", invoice_id, param="invoice")
                if invoice["customer"] != customer:
                    raise StripeFail(
                        400, f"The invoice {invoice_id} belongs to another customer.", param="invoice"
                    )
                if invoice["status"] != "draft":
                    raise StripeFail(
                        400,
                        f"You can only add invoice items to draft invoices; {invoice_id} is {invoice['status']}.",
                        code="invoice_not_editable",
                        param="invoice",
                    )
                if invoice["currency"] != currency:
                    raise StripeFail(
                        400, f"The currency {currency} does not match the invoice's {invoice['currency']}.",
                        param="currency",
                    )  # fmt: skip
            item = self._store(
                account,
                "invoiceitem",
                {
                    "id": new_id("ii"),
                    "object": "invoiceitem",
                    "customer": customer,
                    "invoice": invoice_id,
                    "amount": amount,
                    "currency": currency,
                    "quantity": quantity,
                    "unit_amount": unit_amount,
                    "description": params.get("description"),
                    "metadata": metadata_param(params),
                    "date": int(time.time()),
                },
            )
            if invoice_id:
                self._recompute(account, account.table("invoice")[invoice_id])
            return 200, self._render(account, item)

        return self._api(request, handler)

    @route("GET", "/v1/invoiceitems")
    def invoiceitem_list(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], _: SandboxRequest) -> tuple[int, Any]:
            customer, invoice = params.get("customer"), params.get("invoice")
            return self._list(
                account,
                "invoiceitem",
                params,
                "/v1/invoiceitems",
                {"customer", "invoice", "pending"},
                lambda o: (
                    (not customer or o["customer"] == customer) and (not invoice or o["invoice"] == invoice)
                ),
            )

        return self._api(request, handler)

    # --- invoices ---
    def _recompute(self, account: Account, invoice: dict[str, Any]) -> None:
        subtotal = sum(i["amount"] for i in self._invoice_items(account, invoice["id"]))
        invoice.update(subtotal=subtotal, total=subtotal, amount_due=subtotal)
        invoice["amount_remaining"] = subtotal - invoice["amount_paid"]

    @route("POST", "/v1/invoices")
    def invoice_create(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], _: SandboxRequest) -> tuple[int, Any]:
            check_known(
                params,
                {"customer", "collection_method", "days_until_due", "due_date", "auto_advance", "description",
                 "metadata", "pending_invoice_items_behavior", "currency", "subscription"},
            )  # fmt: skip
            customer = self._customer_id(account, params)
            method = params.get("collection_method", "charge_automatically")
            if method not in ("charge_automatically", "send_invoice"):
                raise StripeFail(
                    400, f"Invalid collection_method: {method}", code="parameter_invalid_string",
                    param="collection_method",
                )  # fmt: skip
            days = int_param(params, "days_until_due", minimum=0)
            due_date = int_param(params, "due_date", minimum=0)
            if method == "send_invoice" and days is None and due_date is None:
                raise StripeFail(
                    400,
                    "Invoices with collection_method=send_invoice need either days_until_due or due_date.",
                    code="parameter_missing",
                    param="days_until_due",
                )
            if method == "charge_automatically" and (days is not None or due_date is not None):
                raise StripeFail(
                    400, "days_until_due and due_date can only be set with collection_method=send_invoice.",
                    param="days_until_due" if days is not None else "due_date",
                )  # fmt: skip
            now = int(time.time())
            if due_date is None and days is not None:
                due_date = now + days * 86400
            behavior = params.get("pending_invoice_items_behavior", "exclude")
            if behavior not in ("exclude", "include"):
                raise StripeFail(
                    400, f"Invalid pending_invoice_items_behavior: {behavior}",
                    param="pending_invoice_items_behavior",
                )  # fmt: skip
            currency = params.get("currency", "usd").lower()
            invoice = self._store(
                account,
                "invoice",
                {
                    "id": new_id("in"),
                    "object": "invoice",
                    "customer": customer,
                    "status": "draft",
                    "currency": currency,
                    "collection_method": method,
                    "auto_advance": bool_param(params, "auto_advance", method == "charge_automatically"),
                    "description": params.get("description"),
                    "due_date": due_date,
                    "number": None,
                    "hosted_invoice_url": None,
                    "invoice_pdf": None,
                    "subtotal": 0,
                    "total": 0,
                    "amount_due": 0,
                    "amount_paid": 0,
                    "amount_remaining": 0,
                    "attempt_count": 0,
                    "metadata": metadata_param(params),
                    "parent": None,
                    "period_start": now,
                    "period_end": now,
                    "status_transitions": {
                        "finalized_at": None,
                        "paid_at": None,
                        "voided_at": None,
                        "marked_uncollectible_at": None,
                    },
                },
            )
            if behavior == "include":
                for item in account.table("invoiceitem").values():
                    if (
                        item["customer"] == customer
                        and item["invoice"] is None
                        and item["currency"] == currency
                    ):
                        item["invoice"] = invoice["id"]
            self._recompute(account, invoice)
            self._emit(account, "invoice.created", self._render(account, invoice))
            return 200, self._render(account, invoice)

        return self._api(request, handler)

    @route("GET", "/v1/invoices/(?P<id>in_[^/]+)")
    def invoice_retrieve(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], req: SandboxRequest) -> tuple[int, Any]:
            return 200, self._render(account, self._get(account, "invoice", req.params["id"]))

        return self._api(request, handler)

    @route("GET", "/v1/invoices")
    def invoice_list(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], _: SandboxRequest) -> tuple[int, Any]:
            customer, status, sub = params.get("customer"), params.get("status"), params.get("subscription")
            if status and status not in ("draft", "open", "paid", "uncollectible", "void"):
                raise StripeFail(
                    400, f"Invalid status: {status}", code="parameter_invalid_string", param="status"
                )
            return self._list(
                account,
                "invoice",
                params,
                "/v1/invoices",
                {"customer", "status", "subscription", "collection_method", "due_date"},
                lambda o: (
                    (not customer or o["customer"] == customer)
                    and (not status or o["status"] == status)
                    and (not sub or o.get("subscription") == sub)
                ),
            )

        return self._api(request, handler)

    @route("POST", "/v1/invoices/(?P<id>in_[^/]+)/finalize")
    def invoice_finalize(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], req: SandboxRequest) -> tuple[int, Any]:
            check_known(params, {"auto_advance"})
            invoice = self._get(account, "invoice", req.params["id"])
            if invoice["status"] != "draft":
                raise StripeFail(
                    400,
                    "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
                    code="invoice_unexpected_state",
                )
            now = int(time.time())
            number = next(account.invoice_counter)
            customer = account.table("customer")[invoice["customer"]]
            invoice.update(
                status="open",
                number=f"{customer['invoice_prefix']}-{number:04d}",
                hosted_invoice_url=f"https://invoice.stripe.com/i/sandbox/{invoice['id']}",
                invoice_pdf=f"https://pay.stripe.com/invoice/sandbox/{invoice['id']}/pdf",
                auto_advance=bool_param(params, "auto_advance", invoice["auto_advance"]),
            )
            invoice["status_transitions"]["finalized_at"] = now
            if invoice["amount_due"] == 0:
                invoice["status"] = "paid"
                invoice["status_transitions"]["paid_at"] = now
            self._emit(account, "invoice.finalized", self._render(account, invoice))
            return 200, self._render(account, invoice)

        return self._api(request, handler)

    @route("POST", "/v1/invoices/(?P<id>in_[^/]+)/pay")
    def invoice_pay(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], req: SandboxRequest) -> tuple[int, Any]:
            check_known(params, {"paid_out_of_band", "payment_method", "source"})
            invoice = self._get(account, "invoice", req.params["id"])
            if invoice["status"] != "open":
                raise StripeFail(
                    400, f"Invoice is {invoice['status']}; only open invoices can be paid.",
                    code="invoice_unexpected_state" if invoice["status"] != "paid" else "invoice_already_paid",
                )  # fmt: skip
            now = int(time.time())
            if not bool_param(params, "paid_out_of_band", False):
                self._create_charge(
                    account, invoice["customer"], invoice["amount_remaining"], invoice["currency"],
                    f"Payment for invoice {invoice['number']}", {"invoice": invoice["id"]},
                )  # fmt: skip
            invoice.update(status="paid", amount_paid=invoice["amount_due"], amount_remaining=0)
            invoice["status_transitions"]["paid_at"] = now
            self._emit(account, "invoice.paid", self._render(account, invoice))
            return 200, self._render(account, invoice)

        return self._api(request, handler)

    @route("POST", "/v1/invoices/(?P<id>in_[^/]+)/void")
    def invoice_void(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], req: SandboxRequest) -> tuple[int, Any]:
            invoice = self._get(account, "invoice", req.params["id"])
            if invoice["status"] != "open":
                raise StripeFail(400, f"You can only void open invoices; this one is {invoice['status']}.")
            invoice["status"] = "void"
            invoice["status_transitions"]["voided_at"] = int(time.time())
            self._emit(account, "invoice.voided", self._render(account, invoice))
            return 200, self._render(account, invoice)

        return self._api(request, handler)

    # --- payment intents and charges ---
    def _create_charge(
        self,
        account: Account,
        customer: str | None,
        amount: int,
        currency: str,
        description: str | None,
        metadata: dict[str, str],
        payment_intent: str | None = None,
    ) -> dict[str, Any]:
        charge = self._store(
            account,
            "charge",
            {
                "id": new_id("ch"),
                "object": "charge",
                "amount": amount,
                "amount_captured": amount,
                "amount_refunded": 0,
                "currency": currency,
                "customer": customer,
                "description": description,
                "metadata": metadata,
                "paid": True,
                "captured": True,
                "refunded": False,
                "status": "succeeded",
                "payment_intent": payment_intent,
                "payment_method": "pm_card_visa",
                "receipt_url": None,
                "failure_code": None,
                "failure_message": None,
            },
        )
        self._emit(account, "charge.succeeded", self._render(account, charge))
        return charge

    @route("POST", "/v1/payment_intents")
    def payment_intent_create(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], _: SandboxRequest) -> tuple[int, Any]:
            check_known(
                params,
                {"amount", "currency", "customer", "payment_method", "confirm", "automatic_payment_methods",
                 "description", "metadata", "receipt_email", "off_session", "capture_method", "payment_method_types"},
            )  # fmt: skip
            amount = int_param(params, "amount", minimum=1)
            if amount is None:
                raise required_error("amount")
            currency = _currency(params)
            customer = self._customer_id(account, params, required=False)
            intent = self._store(
                account,
                "payment_intent",
                {
                    "id": new_id("pi"),
                    "object": "payment_intent",
                    "amount": amount,
                    "amount_received": 0,
                    "currency": currency,
                    "customer": customer,
                    "description": params.get("description"),
                    "metadata": metadata_param(params),
                    "payment_method": params.get("payment_method"),
                    "status": "requires_confirmation"
                    if params.get("payment_method")
                    else "requires_payment_method",
                    "latest_charge": None,
                    "client_secret": None,
                    "capture_method": params.get("capture_method", "automatic"),
                },
            )
            intent["client_secret"] = f"{intent['id']}_secret_{secrets.token_hex(8)}"
            if bool_param(params, "confirm", False):
                self._confirm(account, intent, params.get("payment_method"))
            return 200, self._render(account, intent)

        return self._api(request, handler)

    def _confirm(self, account: Account, intent: dict[str, Any], payment_method: str | None) -> None:
        payment_method = payment_method or intent.get("payment_method")
        if not payment_method:
            raise StripeFail(
                400,
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="payment_intent_unexpected_state",
            )
        if payment_method == "pm_card_chargeDeclined":  # Stripe's test card for a decline
            raise StripeFail(
                402, "Your card was declined.", type="card_error", code="card_declined",
                extra={"decline_code": "generic_decline"},
            )  # fmt: skip
        charge = self._create_charge(
            account, intent["customer"], intent["amount"], intent["currency"],
            intent["description"], dict(intent["metadata"]), intent["id"],
        )  # fmt: skip
        intent.update(
            status="succeeded",
            payment_method=payment_method,
            latest_charge=charge["id"],
            amount_received=intent["amount"],
        )
        self._emit(account, "payment_intent.succeeded", self._render(account, intent))

    @route("POST", "/v1/payment_intents/(?P<id>pi_[^/]+)/confirm")
    def payment_intent_confirm(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], req: SandboxRequest) -> tuple[int, Any]:
            check_known(params, {"payment_method", "off_session", "return_url"})
            intent = self._get(account, "payment_intent", req.params["id"])
            if intent["status"] not in ("requires_payment_method", "requires_confirmation"):
                raise StripeFail(
                    400, f"This PaymentIntent's status is {intent['status']}; it cannot be confirmed.",
                    code="payment_intent_unexpected_state",
                )  # fmt: skip
            self._confirm(account, intent, params.get("payment_method"))
            return 200, self._render(account, intent)

        return self._api(request, handler)

    @route("GET", "/v1/payment_intents/(?P<id>pi_[^/]+)")
    def payment_intent_retrieve(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], req: SandboxRequest) -> tuple[int, Any]:
            return 200, self._render(account, self._get(account, "payment_intent", req.params["id"]))

        return self._api(request, handler)

    @route("GET", "/v1/payment_intents")
    def payment_intent_list(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], _: SandboxRequest) -> tuple[int, Any]:
            customer = params.get("customer")
            return self._list(
                account, "payment_intent", params, "/v1/payment_intents", {"customer"},
                lambda o: not customer or o["customer"] == customer,
            )  # fmt: skip

        return self._api(request, handler)

    @route("GET", "/v1/charges/(?P<id>(ch|py)_[^/]+)")
    def charge_retrieve(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], req: SandboxRequest) -> tuple[int, Any]:
            return 200, self._render(account, self._get(account, "charge", req.params["id"]))

        return self._api(request, handler)

    @route("GET", "/v1/charges")
    def charge_list(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], _: SandboxRequest) -> tuple[int, Any]:
            customer, intent = params.get("customer"), params.get("payment_intent")
            return self._list(
                account, "charge", params, "/v1/charges", {"customer", "payment_intent"},
                lambda o: (not customer or o["customer"] == customer)
                and (not intent or o["payment_intent"] == intent),
            )  # fmt: skip

        return self._api(request, handler)

    # --- refunds ---
    @route("POST", "/v1/refunds")
    def refund_create(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], _: SandboxRequest) -> tuple[int, Any]:
            check_known(params, {"charge", "payment_intent", "amount", "reason", "metadata"})
            if params.get("charge"):
                charge = self._get(account, "charge", params["charge"], param="charge")
            elif params.get("payment_intent"):
                intent = self._get(
                    account, "payment_intent", params["payment_intent"], param="payment_intent"
                )
                if not intent["latest_charge"]:
                    raise StripeFail(
                        400, f"PaymentIntent {intent['id']} does not have a successful charge to refund.",
                        code="charge_not_refundable", param="payment_intent",
                    )  # fmt: skip
                charge = account.table("charge")[intent["latest_charge"]]
            else:
                raise StripeFail(400, "One of the following params should be provided for this request: "
                                 "charge or payment_intent.", code="parameter_missing")  # fmt: skip
            reason = params.get("reason")
            if reason is not None and reason not in ("duplicate", "fraudulent", "requested_by_customer"):
                raise StripeFail(
                    400, f"Invalid reason: {reason}", code="parameter_invalid_string", param="reason"
                )
            remaining = charge["amount"] - charge["amount_refunded"]
            amount = int_param(params, "amount", minimum=1)
            amount = remaining if amount is None else amount
            if remaining == 0:
                raise StripeFail(
                    400, f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded"
                )
            if amount > remaining:
                raise StripeFail(
                    400,
                    f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})",
                    code="amount_too_large",
                    param="amount",
                )
            refund = self._store(
                account,
                "refund",
                {
                    "id": new_id("re"),
                    "object": "refund",
                    "amount": amount,
                    "charge": charge["id"],
                    "payment_intent": charge["payment_intent"],
                    "currency": charge["currency"],
                    "reason": reason,
                    "status": "succeeded",
                    "metadata": metadata_param(params),
                },
            )
            charge["amount_refunded"] += amount
            charge["refunded"] = charge["amount_refunded"] == charge["amount"]
            self._emit(account, "charge.refunded", self._render(account, charge))
            return 200, self._render(account, refund)

        return self._api(request, handler)

    @route("GET", "/v1/refunds/(?P<id>re_[^/]+)")
    def refund_retrieve(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], req: SandboxRequest) -> tuple[int, Any]:
            return 200, self._render(account, self._get(account, "refund", req.params["id"]))

        return self._api(request, handler)

    @route("GET", "/v1/refunds")
    def refund_list(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], _: SandboxRequest) -> tuple[int, Any]:
            charge = params.get("charge")
            return self._list(
                account, "refund", params, "/v1/refunds", {"charge", "payment_intent"},
                lambda o: not charge or o["charge"] == charge,
            )  # fmt: skip

        return self._api(request, handler)

    # --- subscriptions ---
    def _subscription_item(
        self, account: Account, price_id: str, quantity: int, start: int
    ) -> dict[str, Any]:
        price = self._get(account, "price", price_id, param="items[0][price]")
        if not price["recurring"]:
            raise StripeFail(
                400, f"The price specified ({price_id}) is not recurring; subscriptions need a recurring price.",
                param="items[0][price]",
            )  # fmt: skip
        return {
            "id": new_id("si"),
            "object": "subscription_item",
            "price": self._public(price),
            "quantity": quantity,
            "current_period_start": start,
            "current_period_end": start + _period_seconds(price["recurring"]),
        }

    @route("POST", "/v1/subscriptions")
    def subscription_create(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], _: SandboxRequest) -> tuple[int, Any]:
            check_known(
                params,
                {"customer", "items", "metadata", "trial_period_days", "cancel_at_period_end",
                 "collection_method", "days_until_due", "default_payment_method", "proration_behavior"},
            )  # fmt: skip
            customer = self._customer_id(account, params)
            items = params.get("items")
            if not isinstance(items, list) or not items:
                raise required_error("items")
            now = int(time.time())
            built = [
                self._subscription_item(
                    account, i.get("price", ""), int_param(i, "quantity", minimum=1) or 1, now
                )
                for i in items
                if isinstance(i, dict)
            ]
            trial = int_param(params, "trial_period_days", minimum=0)
            subscription = self._store(
                account,
                "subscription",
                {
                    "id": new_id("sub"),
                    "object": "subscription",
                    "customer": customer,
                    "status": "trialing" if trial else "active",
                    "currency": built[0]["price"]["currency"],
                    "items": {
                        "object": "list",
                        "data": built,
                        "has_more": False,
                        "url": "/v1/subscription_items",
                    },
                    "cancel_at_period_end": bool_param(params, "cancel_at_period_end", False),
                    "cancel_at": None,
                    "canceled_at": None,
                    "ended_at": None,
                    "pause_collection": None,
                    "start_date": now,
                    "trial_end": now + trial * 86400 if trial else None,
                    "collection_method": params.get("collection_method", "charge_automatically"),
                    "metadata": metadata_param(params),
                },
            )
            self._emit(account, "customer.subscription.created", self._render(account, subscription))
            return 200, self._render(account, subscription)

        return self._api(request, handler)

    @route("GET", "/v1/subscriptions/(?P<id>sub_[^/]+)")
    def subscription_retrieve(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], req: SandboxRequest) -> tuple[int, Any]:
            return 200, self._render(account, self._get(account, "subscription", req.params["id"]))

        return self._api(request, handler)

    @route("GET", "/v1/subscriptions")
    def subscription_list(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], _: SandboxRequest) -> tuple[int, Any]:
            customer, status = params.get("customer"), params.get("status")
            # Stripe's default hides canceled subscriptions; status=all shows every one.
            return self._list(
                account, "subscription", params, "/v1/subscriptions", {"customer", "status", "price"},
                lambda o: (not customer or o["customer"] == customer)
                and (o["status"] == status if status and status != "all" else status == "all" or o["status"] != "canceled"),
            )  # fmt: skip

        return self._api(request, handler)

    @route("POST", "/v1/subscriptions/(?P<id>sub_[^/]+)")
    def subscription_update(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], req: SandboxRequest) -> tuple[int, Any]:
            check_known(
                params,
                {"cancel_at_period_end", "pause_collection", "items", "metadata", "proration_behavior",
                 "cancel_at", "default_payment_method"},
            )  # fmt: skip
            subscription = self._get(account, "subscription", req.params["id"])
            if subscription["status"] == "canceled":
                raise StripeFail(
                    400, "A canceled subscription can only update its cancellation_details and metadata."
                )
            previous: dict[str, Any] = {}
            if "cancel_at_period_end" in params:
                previous["cancel_at_period_end"] = subscription["cancel_at_period_end"]
                subscription["cancel_at_period_end"] = bool_param(params, "cancel_at_period_end")
                subscription["cancel_at"] = (
                    subscription["items"]["data"][0]["current_period_end"]
                    if subscription["cancel_at_period_end"]
                    else None
                )
            if "pause_collection" in params:
                pause = params["pause_collection"]
                previous["pause_collection"] = subscription["pause_collection"]
                if pause == "":
                    subscription["pause_collection"] = None
                elif isinstance(pause, dict) and pause.get("behavior") in (
                    "keep_as_draft",
                    "mark_uncollectible",
                    "void",
                ):
                    subscription["pause_collection"] = {
                        "behavior": pause["behavior"],
                        "resumes_at": int_param(pause, "resumes_at"),
                    }
                else:
                    raise StripeFail(
                        400, "Invalid pause_collection[behavior]: must be one of keep_as_draft, "
                        "mark_uncollectible, or void", param="pause_collection[behavior]",
                    )  # fmt: skip
            if "proration_behavior" in params and params["proration_behavior"] not in (
                "create_prorations",
                "none",
                "always_invoice",
            ):
                raise StripeFail(400, "Invalid proration_behavior", param="proration_behavior")
            if "items" in params:
                items = params["items"]
                if not isinstance(items, list):
                    raise StripeFail(400, "Invalid array", code="parameter_invalid_array", param="items")
                current = {i["id"]: i for i in subscription["items"]["data"]}
                previous["items"] = json.loads(json.dumps(subscription["items"]))
                for index, change in enumerate(items):
                    if not isinstance(change, dict):
                        raise StripeFail(400, "Invalid hash", param=f"items[{index}]")
                    item_id = change.get("id")
                    if item_id and item_id not in current:
                        raise missing_error("subscription_item", item_id, f"items[{index}][id]")
                    quantity = int_param(change, "quantity", minimum=1)
                    if item_id and change.get("price"):
                        start = current[item_id]["current_period_start"]
                        replacement = self._subscription_item(
                            account, change["price"], quantity or current[item_id]["quantity"], start
                        )
                        replacement["id"] = item_id
                        current[item_id].update(replacement)
                    elif item_id and quantity:
                        current[item_id]["quantity"] = quantity
                    elif change.get("price"):
                        new = self._subscription_item(
                            account, change["price"], quantity or 1, int(time.time())
                        )
                        subscription["items"]["data"].append(new)
            subscription["metadata"] = metadata_param(params, subscription["metadata"])
            self._emit(account, "customer.subscription.updated", self._render(account, subscription))
            return 200, self._render(account, subscription)

        return self._api(request, handler)

    @route("DELETE", "/v1/subscriptions/(?P<id>sub_[^/]+)")
    def subscription_cancel(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], req: SandboxRequest) -> tuple[int, Any]:
            check_known(params, {"invoice_now", "prorate", "cancellation_details"})
            subscription = self._get(account, "subscription", req.params["id"])
            if subscription["status"] == "canceled":
                raise StripeFail(
                    400, f"No such subscription: '{subscription['id']}' is already canceled.",
                    code="resource_missing", param="id",
                )  # fmt: skip
            now = int(time.time())
            subscription.update(status="canceled", canceled_at=now, ended_at=now)
            self._emit(account, "customer.subscription.deleted", self._render(account, subscription))
            return 200, self._render(account, subscription)

        return self._api(request, handler)

    # --- events ---
    @route("GET", "/v1/events/(?P<id>evt_[^/]+)")
    def event_retrieve(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], req: SandboxRequest) -> tuple[int, Any]:
            return 200, self._render(account, self._get(account, "event", req.params["id"]))

        return self._api(request, handler)

    @route("GET", "/v1/events")
    def event_list(self, request: SandboxRequest) -> SandboxResponse:
        def handler(account: Account, params: dict[str, Any], _: SandboxRequest) -> tuple[int, Any]:
            kind = params.get("type")
            return self._list(
                account,
                "event",
                params,
                "/v1/events",
                {"type", "types"},
                lambda o: not kind or o["type"] == kind,
            )

        return self._api(request, handler)


def _currency(params: dict[str, Any], name: str = "currency") -> str:
    currency = params.get("currency") if isinstance(params, dict) else None
    if not currency:
        raise required_error(name)
    if not re.fullmatch(r"[A-Za-z]{3}", currency):
        raise StripeFail(400, f"Invalid currency: {currency}", code="parameter_invalid_string", param=name)
    return currency.lower()


def _period_seconds(recurring: dict[str, Any]) -> int:
    days = {"day": 1, "week": 7, "month": 30, "year": 365}[recurring["interval"]]
    return days * 86400 * int(recurring.get("interval_count") or 1)


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


# The sandbox class `manage.py run_sandbox` starts for this service.
SANDBOX_CLASS = StripeSandbox
