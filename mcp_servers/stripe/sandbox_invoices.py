"""The Stripe sandbox's invoices and invoice items: drafts, items, finalize, pay and void."""

from __future__ import annotations

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
    new_id,
    required_error,
)


class InvoiceRoutes(StripeApi):
    """/v1/invoiceitems and /v1/invoices (mixed into StripeSandbox)."""

    # --- invoice items ---
    @route("POST", "/v1/invoiceitems")
    @stripe_call
    def invoiceitem_create(
        self, account: Account, params: dict[str, Any], _: SandboxRequest
    ) -> tuple[int, Any]:
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
            currency = currency_param(params)
            amount = int_param(params, "amount")
            unit_amount = amount // quantity if quantity else amount
        elif isinstance(params.get("price_data"), dict):
            data = params["price_data"]
            currency = currency_param(data, "price_data[currency]")
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

    @route("GET", "/v1/invoiceitems")
    @stripe_call
    def invoiceitem_list(
        self, account: Account, params: dict[str, Any], _: SandboxRequest
    ) -> tuple[int, Any]:
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

    # --- invoices ---
    def _recompute(self, account: Account, invoice: dict[str, Any]) -> None:
        subtotal = sum(i["amount"] for i in self._invoice_items(account, invoice["id"]))
        invoice.update(subtotal=subtotal, total=subtotal, amount_due=subtotal)
        invoice["amount_remaining"] = subtotal - invoice["amount_paid"]

    @route("POST", "/v1/invoices")
    @stripe_call
    def invoice_create(self, account: Account, params: dict[str, Any], _: SandboxRequest) -> tuple[int, Any]:
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
                if item["customer"] == customer and item["invoice"] is None and item["currency"] == currency:
                    item["invoice"] = invoice["id"]
        self._recompute(account, invoice)
        self._emit(account, "invoice.created", self._render(account, invoice))
        return 200, self._render(account, invoice)

    invoice_retrieve = retrieve_route("/v1/invoices/(?P<id>in_[^/]+)", "invoice")

    @route("GET", "/v1/invoices")
    @stripe_call
    def invoice_list(self, account: Account, params: dict[str, Any], _: SandboxRequest) -> tuple[int, Any]:
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

    @route("POST", "/v1/invoices/(?P<id>in_[^/]+)/finalize")
    @stripe_call
    def invoice_finalize(
        self, account: Account, params: dict[str, Any], req: SandboxRequest
    ) -> tuple[int, Any]:
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

    @route("POST", "/v1/invoices/(?P<id>in_[^/]+)/pay")
    @stripe_call
    def invoice_pay(self, account: Account, params: dict[str, Any], req: SandboxRequest) -> tuple[int, Any]:
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

    @route("POST", "/v1/invoices/(?P<id>in_[^/]+)/void")
    @stripe_call
    def invoice_void(self, account: Account, params: dict[str, Any], req: SandboxRequest) -> tuple[int, Any]:
        invoice = self._get(account, "invoice", req.params["id"])
        if invoice["status"] != "open":
            raise StripeFail(400, f"You can only void open invoices; this one is {invoice['status']}.")
        invoice["status"] = "void"
        invoice["status_transitions"]["voided_at"] = int(time.time())
        self._emit(account, "invoice.voided", self._render(account, invoice))
        return 200, self._render(account, invoice)
