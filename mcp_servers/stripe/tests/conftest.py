"""A live StripeSandbox per test module, pointed at by the settings, and a two-tenant world.

Alice and Bob are both customers in the platform's Stripe account (the platform key), as
tenants without their own key are, so every answer must be limited to the tenant's customer.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pytest
import stripe

from askpro.models import Company
from mcp_core.api_keys import api_key_authenticate
from mcp_core.contracts import MCPResponse
from mcp_core.pipeline import call_operation
from mcp_servers.stripe.sandbox import StripeSandbox

PLATFORM_KEY = "sk_test_platform_0123456789"
ALICE_OWN_KEY = "sk_test_alice_own_0123456789"


@pytest.fixture(scope="module")
def sandbox():
    server = StripeSandbox(demo=False, rate_limit_per_second=None).start()
    yield server
    server.stop()


@pytest.fixture
def stripe_sb(sandbox, settings) -> StripeSandbox:
    """The module's sandbox, emptied, with the platform key and API base pointing at it."""
    sandbox.reset()
    sandbox.rate_limit_per_second = None
    settings.STRIPE_API_BASE = sandbox.url
    settings.STRIPE_SECRET_KEY = PLATFORM_KEY
    return sandbox


def lib(sandbox: StripeSandbox, key: str = PLATFORM_KEY) -> stripe.StripeClient:
    """The official client straight at the sandbox (to arrange state and to check it)."""
    return stripe.StripeClient(key, base_addresses={"api": sandbox.url}, max_network_retries=0)


def paid_invoice(client: stripe.StripeClient, customer: str, amount: int, currency: str = "eur") -> Any:
    invoice = client.v1.invoices.create(
        params={
            "customer": customer,
            "currency": currency,
            "collection_method": "send_invoice",
            "days_until_due": 14,
        }
    )
    client.v1.invoice_items.create(
        params={"customer": customer, "invoice": invoice.id, "amount": amount, "currency": currency}
    )
    client.v1.invoices.finalize_invoice(invoice.id)
    return client.v1.invoices.pay(invoice.id)


@dataclass
class World:
    sandbox: StripeSandbox
    alice: Company
    bob: Company
    alice_key: str
    bob_key: str
    ids: dict[str, str]

    def call(
        self,
        operation: str,
        params: dict[str, Any] | None = None,
        *,
        key: str | None = None,
        idempotency_key: str | None = None,
    ) -> MCPResponse:
        principal = api_key_authenticate(key or self.alice_key)
        return call_operation(
            "stripe", operation, params or {}, principal=principal, idempotency_key=idempotency_key
        )

    @property
    def lib(self) -> stripe.StripeClient:
        return lib(self.sandbox)


@pytest.fixture(scope="module")
def stripe_state(sandbox) -> tuple[dict, dict[str, str]]:
    """The two customers' Stripe objects, made once per module through the official library;
    each test starts from a copy of this state (the API calls would only repeat themselves)."""
    sandbox.reset()
    client = lib(sandbox)
    price = client.v1.prices.create(
        params={"currency": "eur", "unit_amount": 4900, "recurring": {"interval": "month"},
                "product_data": {"name": "Receptionist"}}
    )  # fmt: skip
    yearly = client.v1.prices.create(
        params={"currency": "eur", "unit_amount": 46800, "recurring": {"interval": "year"}, "product": price.product}
    )  # fmt: skip
    ids: dict[str, str] = {"price": price.id, "yearly": yearly.id}
    for name, company_name, slug, amount in (
        ("alice", "Alice's Salon", "alice-salon", 4900),
        ("bob", "Bob's Practice", "bob-practice", 12000),
    ):
        customer = client.v1.customers.create(
            params={"name": company_name, "email": f"billing@{slug}.example"}
        )
        invoice = paid_invoice(client, customer.id, amount)
        charge = client.v1.charges.list(params={"customer": customer.id}).data[0]
        intent = client.v1.payment_intents.create(
            params={"customer": customer.id, "amount": 2500, "currency": "eur", "payment_method": "pm_card_visa",
                    "confirm": True}
        )  # fmt: skip
        subscription = client.v1.subscriptions.create(
            params={"customer": customer.id, "items": [{"price": price.id}]}
        )
        ids |= {
            f"{name}_customer": customer.id,
            f"{name}_invoice": invoice.id,
            f"{name}_charge": charge.id,
            f"{name}_intent": intent.id,
            f"{name}_subscription": subscription.id,
        }
    with sandbox.lock:
        snapshot = copy.deepcopy(sandbox.accounts)
    return snapshot, ids


@pytest.fixture
def world(stripe_sb, stripe_state, alice, bob, alice_key, bob_key) -> World:
    snapshot, ids = stripe_state
    with stripe_sb.lock:
        stripe_sb.accounts = copy.deepcopy(snapshot)
    for name, company in (("alice", alice), ("bob", bob)):
        company.stripe_customer_id = ids[f"{name}_customer"]
        company.save(update_fields=["stripe_customer_id"])
    stripe_sb.request_log.clear()
    return World(stripe_sb, alice, bob, alice_key, bob_key, dict(ids))
