"""The Stripe sandbox's subscriptions and the products and prices they bill."""

from __future__ import annotations

import json
import time
from typing import Any

from mcp_core.sandbox import SandboxRequest, route

from .sandbox_api import StripeApi, retrieve_route, stripe_call
from .sandbox_state import (
    Account,
    StripeFail,
    bool_param,
    check_known,
    currency_param,
    int_param,
    metadata_param,
    missing_error,
    new_id,
    required_error,
)


class SubscriptionRoutes(StripeApi):
    """/v1/products, /v1/prices and /v1/subscriptions (mixed into StripeSandbox)."""

    # --- products and prices ---
    @route("POST", "/v1/products")
    @stripe_call
    def product_create(self, account: Account, params: dict[str, Any], _: SandboxRequest) -> tuple[int, Any]:
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

    @route("POST", "/v1/prices")
    @stripe_call
    def price_create(self, account: Account, params: dict[str, Any], _: SandboxRequest) -> tuple[int, Any]:
        check_known(
            params,
            {"currency", "unit_amount", "recurring", "product", "product_data", "nickname", "metadata"},
        )
        currency = currency_param(params)
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

    price_retrieve = retrieve_route("/v1/prices/(?P<id>[^/]+)", "price")

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
    @stripe_call
    def subscription_create(
        self, account: Account, params: dict[str, Any], _: SandboxRequest
    ) -> tuple[int, Any]:
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

    subscription_retrieve = retrieve_route("/v1/subscriptions/(?P<id>sub_[^/]+)", "subscription")

    @route("GET", "/v1/subscriptions")
    @stripe_call
    def subscription_list(
        self, account: Account, params: dict[str, Any], _: SandboxRequest
    ) -> tuple[int, Any]:
        customer, status = params.get("customer"), params.get("status")
        # Stripe's default hides canceled subscriptions; status=all shows every one.
        return self._list(
            account, "subscription", params, "/v1/subscriptions", {"customer", "status", "price"},
            lambda o: (not customer or o["customer"] == customer)
            and (o["status"] == status if status and status != "all" else status == "all" or o["status"] != "canceled"),
        )  # fmt: skip

    @route("POST", "/v1/subscriptions/(?P<id>sub_[^/]+)")
    @stripe_call
    def subscription_update(
        self, account: Account, params: dict[str, Any], req: SandboxRequest
    ) -> tuple[int, Any]:
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
                    new = self._subscription_item(account, change["price"], quantity or 1, int(time.time()))
                    subscription["items"]["data"].append(new)
        subscription["metadata"] = metadata_param(params, subscription["metadata"])
        self._emit(account, "customer.subscription.updated", self._render(account, subscription))
        return 200, self._render(account, subscription)

    @route("DELETE", "/v1/subscriptions/(?P<id>sub_[^/]+)")
    @stripe_call
    def subscription_cancel(
        self, account: Account, params: dict[str, Any], req: SandboxRequest
    ) -> tuple[int, Any]:
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


def _period_seconds(recurring: dict[str, Any]) -> int:
    days = {"day": 1, "week": 7, "month": 30, "year": 365}[recurring["interval"]]
    return days * 86400 * int(recurring.get("interval_count") or 1)
