"""The Stripe server: a tenant's billing, seen and managed through the official `stripe` library.

Every figure and every write is limited to the tenant's own Stripe customer
(Company.stripe_customer_id): ids a caller passes (invoice, charge, payment intent,
subscription) are checked against that customer and answered with not_found otherwise, so one
tenant can neither see nor touch another's objects even when both live in the platform account.
This class declares the operations; flows of several Stripe calls live in invoices.py,
payments.py and subscriptions.py, the tenant checks in tenancy.py.
"""

from __future__ import annotations

import time

import stripe
from django.conf import settings

from mcp_core.contracts import ErrorCode, MCPError, OperationContext
from mcp_core.health import HealthResult, HealthStatus, probe_credentials
from mcp_core.schemas import NoParams
from mcp_core.server import MCPServer, operation

from . import client as stripe_api
from . import invoices, payments, subscriptions
from .client import STRIPE_KEY, StripeCredentials, stripe_client
from .schemas import (
    CreateInvoiceParams,
    CreateInvoiceResult,
    CustomerPaymentsParams,
    CustomerPaymentsResult,
    FinalizeInvoiceParams,
    FinalizeInvoiceResult,
    GetSubscriptionParams,
    OverviewParams,
    OverviewResult,
    RefundParams,
    RefundResult,
    SubscriptionResult,
    TestConnectionResult,
    UpdateSubscriptionParams,
    UpdateSubscriptionResult,
    charge_info,
    customer_info,
    invoice_info,
    subscription_info,
)
from .tenancy import Tenant


class StripeServer(MCPServer):
    """Billing through Stripe, limited to each tenant's own Stripe customer."""

    name = "stripe"
    description = "Stripe billing of a tenant: payments, invoices, refunds and subscriptions"
    webhooks = "mcp_servers.stripe.webhooks"  # its inbound webhooks (@webhook)

    def is_configured(self) -> bool:
        return STRIPE_KEY.is_configured()

    def health(self) -> HealthResult:
        """GET /v1/balance (cheap, authenticated) with the platform key and a few tenant keys."""
        base = settings.STRIPE_API_BASE.rstrip("/")
        checks = [StripeCredentials(c.secret, base, c.source) for c in STRIPE_KEY.health_credentials()]
        if not checks:
            return HealthResult(
                HealthStatus.NOT_CONFIGURED, "no platform STRIPE_SECRET_KEY and no tenant key"
            )

        def read_balance(creds: StripeCredentials) -> None:
            try:
                with stripe_api.deadline_at(time.monotonic() + 2.0):
                    stripe_client(creds).v1.balance.retrieve()
            except stripe.StripeError as exc:
                raise stripe_api.map_error(exc, "balance") from exc

        return probe_credentials(
            checks, read_balance, describe=lambda creds: f"{creds.source} key", answered="{n} key(s) answered"
        )

    # --- reads ---
    @operation(
        description="""Payment overview of this tenant's own Stripe customer over a period: charges
        (gross, refunded, net), invoices by status with paid and outstanding amounts, subscriptions
        by status with monthly recurring revenue, and the latest charges. Never account-wide.""",
        params=OverviewParams,
        result=OverviewResult,
        scope="read",
        read_only=True,
        open_world=True,
    )
    def get_payment_overview(self, ctx: OperationContext, params: OverviewParams) -> OverviewResult:
        return payments.overview(Tenant(ctx), params.period)

    @operation(
        description="""This tenant's Stripe customer with its latest charges and invoices (newest first).""",
        params=CustomerPaymentsParams,
        result=CustomerPaymentsResult,
        scope="read",
        read_only=True,
        open_world=True,
    )
    def get_customer_payments(
        self, ctx: OperationContext, params: CustomerPaymentsParams
    ) -> CustomerPaymentsResult:
        t = Tenant(ctx)
        customer_id = t.customer_id()
        try:
            customer = t.fetch("retrieve customer", t.v1.customers.retrieve, customer_id)
        except MCPError as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                raise MCPError(
                    ErrorCode.NOT_FOUND,
                    f"stripe: the tenant's customer {customer_id!r} does not exist in Stripe",
                ) from None
            raise
        query = {"customer": customer_id, "limit": params.limit}
        charges = t.fetch("list charges", t.v1.charges.list, params=query)
        invoices = t.fetch("list invoices", t.v1.invoices.list, params=query)
        return CustomerPaymentsResult(
            customer=customer_info(customer),
            charges=[charge_info(c) for c in charges["data"]],
            invoices=[invoice_info(i) for i in invoices["data"]],
            has_more_charges=bool(charges.get("has_more")),
            has_more_invoices=bool(invoices.get("has_more")),
        )

    # --- invoices ---
    @operation(
        description="""Create a Stripe invoice for this tenant (in the tenant's currency) with line
        items, a due date (default 30 days) and metadata, optionally finalized, and record it locally.
        Idempotent: the same request again (same Idempotency-Key, or without a key the same
        params) returns the first invoice instead of making another; the same key with other
        params is a conflict. Creates the tenant's Stripe customer if it has none.""",
        params=CreateInvoiceParams,
        result=CreateInvoiceResult,
        scope="write",
        idempotent=True,
        open_world=True,
    )
    def create_invoice(self, ctx: OperationContext, params: CreateInvoiceParams) -> CreateInvoiceResult:
        return invoices.create_invoice(Tenant(ctx), params)

    @operation(
        description="""Finalize one of this tenant's draft invoices (status becomes open and a number
        is assigned) and update the local record. An invoice that is already finalized is
        returned as it is.""",
        params=FinalizeInvoiceParams,
        result=FinalizeInvoiceResult,
        scope="write",
        idempotent=True,
        open_world=True,
    )
    def finalize_invoice(self, ctx: OperationContext, params: FinalizeInvoiceParams) -> FinalizeInvoiceResult:
        return invoices.finalize_invoice(Tenant(ctx), params.invoice_id)

    # --- refunds ---
    @operation(
        description="""Refund a charge (or a payment intent's charge) of this tenant's customer, fully
        or partly. Money leaves the account: admin scope. Idempotent: without an Idempotency-Key
        the same charge, amount and reason within 24 h is one refund (give a new key to refund the
        same amount again on purpose).""",
        params=RefundParams,
        result=RefundResult,
        scope="admin",
        destructive=True,
        idempotent=True,
        open_world=True,
    )
    def process_refund(self, ctx: OperationContext, params: RefundParams) -> RefundResult:
        payments.check_refund_target(params)
        return payments.refund(Tenant(ctx), params)

    # --- subscriptions ---
    @operation(
        description="""One subscription of this tenant: status, items with prices, current period,
        cancellation and pause state, and its monthly amount. Without subscription_id: the
        tenant's subscription (Company.stripe_subscription_id, else its newest one).""",
        params=GetSubscriptionParams,
        result=SubscriptionResult,
        scope="read",
        read_only=True,
        open_world=True,
    )
    def get_subscription(self, ctx: OperationContext, params: GetSubscriptionParams) -> SubscriptionResult:
        subscription = subscriptions.find_subscription(Tenant(ctx), params.subscription_id)
        return SubscriptionResult(subscription=subscription_info(subscription))

    @operation(
        description="""Change one of this tenant's subscriptions. cancel: at the period end (default)
        or now (at_period_end false, irreversible); pause: stop collecting payments (invoices are
        voided); resume: undo a pause or a pending cancellation; change_plan: replace the first
        item's price with price_id (prorated by default).""",
        params=UpdateSubscriptionParams,
        result=UpdateSubscriptionResult,
        scope="write",
        destructive=True,
        open_world=True,
    )
    def update_subscription(
        self, ctx: OperationContext, params: UpdateSubscriptionParams
    ) -> UpdateSubscriptionResult:
        subscriptions.check_price_id(params)
        return subscriptions.update_subscription(Tenant(ctx), params)

    # --- connection ---
    @operation(
        description="""Check the tenant's Stripe credentials with an authenticated call and look up its
        Stripe customer. Says whether the tenant's own key or the platform key is used.""",
        params=NoParams,
        result=TestConnectionResult,
        scope="read",
        read_only=True,
        open_world=True,
    )
    def test_connection(self, ctx: OperationContext, params: NoParams) -> TestConnectionResult:
        t = Tenant(ctx)
        started = time.perf_counter()
        balance = t.fetch("retrieve balance", t.v1.balance.retrieve)
        latency = (time.perf_counter() - started) * 1000
        customer, problem = None, None
        if not t.company.stripe_customer_id:
            problem = "the tenant has no Stripe customer id"
        else:
            try:
                customer = customer_info(
                    t.fetch("retrieve customer", t.v1.customers.retrieve, t.company.stripe_customer_id)
                )
            except MCPError as exc:
                if exc.code != ErrorCode.NOT_FOUND:
                    raise
                problem = f"customer {t.company.stripe_customer_id!r} does not exist in this Stripe account"
        return TestConnectionResult(
            connected=True,
            credentials=t.creds.source,
            livemode=bool(balance.get("livemode")),
            latency_ms=round(latency, 2),
            customer=customer,
            customer_problem=problem,
        )
