"""The Stripe sandbox's money movements: balance, payment intents, charges and refunds."""

from __future__ import annotations

import secrets
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
    new_id,
    required_error,
)


class PaymentRoutes(StripeApi):
    """/v1/balance, /v1/payment_intents, /v1/charges and /v1/refunds (mixed into StripeSandbox)."""

    # --- balance ---
    @route("GET", "/v1/balance")
    @stripe_call
    def balance(self, account: Account, params: dict[str, Any], _: SandboxRequest) -> tuple[int, Any]:
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
        pending = [{"amount": 0, "currency": a["currency"], "source_types": {"card": 0}} for a in available]
        return 200, {
            "object": "balance",
            "available": available,
            "pending": pending,
            "connect_reserved": [],
            "livemode": account.livemode,
        }

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
    @stripe_call
    def payment_intent_create(
        self, account: Account, params: dict[str, Any], _: SandboxRequest
    ) -> tuple[int, Any]:
        check_known(
            params,
            {"amount", "currency", "customer", "payment_method", "confirm", "automatic_payment_methods",
             "description", "metadata", "receipt_email", "off_session", "capture_method", "payment_method_types"},
        )  # fmt: skip
        amount = int_param(params, "amount", minimum=1)
        if amount is None:
            raise required_error("amount")
        currency = currency_param(params)
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
    @stripe_call
    def payment_intent_confirm(
        self, account: Account, params: dict[str, Any], req: SandboxRequest
    ) -> tuple[int, Any]:
        check_known(params, {"payment_method", "off_session", "return_url"})
        intent = self._get(account, "payment_intent", req.params["id"])
        if intent["status"] not in ("requires_payment_method", "requires_confirmation"):
            raise StripeFail(
                400, f"This PaymentIntent's status is {intent['status']}; it cannot be confirmed.",
                code="payment_intent_unexpected_state",
            )  # fmt: skip
        self._confirm(account, intent, params.get("payment_method"))
        return 200, self._render(account, intent)

    payment_intent_retrieve = retrieve_route("/v1/payment_intents/(?P<id>pi_[^/]+)", "payment_intent")

    @route("GET", "/v1/payment_intents")
    @stripe_call
    def payment_intent_list(
        self, account: Account, params: dict[str, Any], _: SandboxRequest
    ) -> tuple[int, Any]:
        customer = params.get("customer")
        return self._list(
            account, "payment_intent", params, "/v1/payment_intents", {"customer"},
            lambda o: not customer or o["customer"] == customer,
        )  # fmt: skip

    charge_retrieve = retrieve_route("/v1/charges/(?P<id>(ch|py)_[^/]+)", "charge")

    @route("GET", "/v1/charges")
    @stripe_call
    def charge_list(self, account: Account, params: dict[str, Any], _: SandboxRequest) -> tuple[int, Any]:
        customer, intent = params.get("customer"), params.get("payment_intent")
        return self._list(
            account, "charge", params, "/v1/charges", {"customer", "payment_intent"},
            lambda o: (not customer or o["customer"] == customer)
            and (not intent or o["payment_intent"] == intent),
        )  # fmt: skip

    # --- refunds ---
    @route("POST", "/v1/refunds")
    @stripe_call
    def refund_create(self, account: Account, params: dict[str, Any], _: SandboxRequest) -> tuple[int, Any]:
        check_known(params, {"charge", "payment_intent", "amount", "reason", "metadata"})
        if params.get("charge"):
            charge = self._get(account, "charge", params["charge"], param="charge")
        elif params.get("payment_intent"):
            intent = self._get(account, "payment_intent", params["payment_intent"], param="payment_intent")
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

    refund_retrieve = retrieve_route("/v1/refunds/(?P<id>re_[^/]+)", "refund")

    @route("GET", "/v1/refunds")
    @stripe_call
    def refund_list(self, account: Account, params: dict[str, Any], _: SandboxRequest) -> tuple[int, Any]:
        charge = params.get("charge")
        return self._list(
            account, "refund", params, "/v1/refunds", {"charge", "payment_intent"},
            lambda o: not charge or o["charge"] == charge,
        )  # fmt: skip
