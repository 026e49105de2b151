"""A stateful fake of the Stripe API (v1) that the official `stripe` library talks to unchanged.

It follows the contract in reference/upstream-apis.md §3: `/v1/...` paths, `sk_` keys as Bearer
or Basic auth (one fake account per key), form-encoded bodies with bracket notation (JSON bodies
are refused), `Stripe-Version` checked for shape, Stripe's error body, list objects with
`has_more`/`starting_after`/`ending_before`, idempotency keys (replay with
`Idempotent-Replayed: true`, another use with other params -> 400 idempotency_error, in flight
-> 409), a per-key request rate limit (429), and signed webhooks (`Stripe-Signature`).

The routes are grouped by resource in mixins (sandbox_customers.py, sandbox_invoices.py,
sandbox_payments.py, sandbox_subscriptions.py), the front door every route goes through is
sandbox_api.py, events and webhook sending sandbox_webhooks.py, the account state and
parameter checks sandbox_state.py; this module composes them and seeds the demo account.
"""

from __future__ import annotations

import time
from typing import Any

from .sandbox_customers import CustomerRoutes
from .sandbox_invoices import InvoiceRoutes
from .sandbox_payments import PaymentRoutes
from .sandbox_state import Account, decode_form
from .sandbox_subscriptions import SubscriptionRoutes
from .sandbox_webhooks import StripeWebhooks, make_event, sign_webhook

__all__ = ["DEMO_API_KEY", "SANDBOX_CLASS", "StripeSandbox", "decode_form", "make_event", "sign_webhook"]

# The demo key askpro/settings.py uses for STRIPE_SECRET_KEY when SANDBOX=1, and the Stripe
# customers askpro/demo.py gives the demo tenants (Company.stripe_customer_id).
DEMO_API_KEY = "sk_test_sandbox_demo"
DEMO_CUSTOMERS = (("cus_demo1", "Salon Sonnenschein"), ("cus_demo2", "Physiotherapie Praxis Weber"))


class StripeSandbox(CustomerRoutes, InvoiceRoutes, PaymentRoutes, SubscriptionRoutes, StripeWebhooks):
    """Stateful Stripe v1 fake: customers, products/prices, invoice items, invoices, payment
    intents, charges, refunds, subscriptions, balance, events, idempotency and webhooks."""

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


# The sandbox class `manage.py run_sandbox` starts for this service.
SANDBOX_CLASS = StripeSandbox
