"""The Stripe sandbox's customers: create, retrieve, update, delete and list."""

from __future__ import annotations

import secrets
from typing import Any

from mcp_core.sandbox import SandboxRequest, route

from .sandbox_api import StripeApi, retrieve_route, stripe_call
from .sandbox_state import Account, check_known, metadata_param, new_id


class CustomerRoutes(StripeApi):
    """/v1/customers (mixed into StripeSandbox)."""

    # --- customers ---
    @route("POST", "/v1/customers")
    @stripe_call
    def customer_create(self, account: Account, params: dict[str, Any], _: SandboxRequest) -> tuple[int, Any]:
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

    customer_retrieve = retrieve_route("/v1/customers/(?P<id>[^/]+)", "customer")

    @route("POST", "/v1/customers/(?P<id>[^/]+)")
    @stripe_call
    def customer_update(
        self, account: Account, params: dict[str, Any], req: SandboxRequest
    ) -> tuple[int, Any]:
        check_known(params, {"email", "name", "phone", "description", "metadata", "address"})
        customer = self._get(account, "customer", req.params["id"])
        for name in ("email", "name", "phone", "description", "address"):
            if name in params:
                customer[name] = params[name] or None
        customer["metadata"] = metadata_param(params, customer["metadata"])
        self._emit(account, "customer.updated", self._render(account, customer))
        return 200, self._render(account, customer)

    @route("DELETE", "/v1/customers/(?P<id>[^/]+)")
    @stripe_call
    def customer_delete(
        self, account: Account, params: dict[str, Any], req: SandboxRequest
    ) -> tuple[int, Any]:
        self._get(account, "customer", req.params["id"])
        del account.table("customer")[req.params["id"]]
        return 200, {"id": req.params["id"], "object": "customer", "deleted": True}

    @route("GET", "/v1/customers")
    @stripe_call
    def customer_list(self, account: Account, params: dict[str, Any], _: SandboxRequest) -> tuple[int, Any]:
        email = params.get("email")
        return self._list(
            account,
            "customer",
            params,
            "/v1/customers",
            {"email"},
            lambda o: not email or o["email"] == email,
        )
