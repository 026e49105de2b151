"""The Stripe server: a tenant's billing, seen and managed through the official `stripe` library.

Every figure and every write is limited to the tenant's own Stripe customer
(Company.stripe_customer_id): ids a caller passes (invoice, charge, payment intent,
subscription) are checked against that customer and answered with not_found otherwise, so one
tenant can neither see nor touch another's objects even when both live in the platform account.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from decimal import Decimal
from typing import Any

import msgspec
import stripe
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from askpro.models import Company, Customer, Invoice
from mcp_core.contracts import ErrorCode, MCPError, OperationContext
from mcp_core.health import HealthResult, HealthStatus
from mcp_core.schemas import NoParams
from mcp_core.server import MCPServer, operation

from . import client as stripe_api
from .client import STRIPE_KEY, StripeCredentials, stripe_client
from .schemas import (
    MAX_LISTED,
    PERIOD_DAYS,
    CreateInvoiceParams,
    CreateInvoiceResult,
    CurrencyTotals,
    CustomerPaymentsParams,
    CustomerPaymentsResult,
    FinalizeInvoiceParams,
    FinalizeInvoiceResult,
    GetSubscriptionParams,
    InvoiceCounts,
    Money,
    OverviewParams,
    OverviewResult,
    RefundInfo,
    RefundParams,
    RefundResult,
    SubscriptionResult,
    SubscriptionSummary,
    TestConnectionResult,
    UpdateSubscriptionParams,
    UpdateSubscriptionResult,
    charge_info,
    customer_info,
    from_timestamp,
    invoice_info,
    subscription_info,
    to_major,
    to_minor,
)
from .tenancy import Tenant, callers_idempotency_key

HEALTH_SLOW_SECONDS = 1.0  # a balance read slower than this makes the service degraded


def _fingerprint(value: Any) -> str:
    return hashlib.sha256(
        json.dumps(msgspec.to_builtins(value), sort_keys=True, default=str).encode()
    ).hexdigest()


def _save_local_invoice(company: Company, stripe_invoice: dict[str, Any], **extra: Any) -> Invoice:
    """The local copy of a Stripe invoice, created once: the unique stripe_invoice_id makes
    concurrent duplicates meet on one row."""
    if Invoice.objects.filter(stripe_invoice_id=stripe_invoice["id"]).exclude(company=company).exists():
        raise MCPError(ErrorCode.CONFLICT, "invoice_id: this Stripe invoice is recorded for another tenant")
    info = invoice_info(stripe_invoice)
    status = info.status if info.status in Invoice.Status.values else Invoice.Status.DRAFT
    defaults: dict[str, Any] = {
        "company": company,
        "number": info.number or "",
        "status": status,
        "currency": info.currency.upper(),
        "subtotal": info.subtotal,
        "total": info.total,
        "due_date": info.due_date.date() if info.due_date else None,
        "metadata": info.metadata,
        **extra,
    }
    if status == Invoice.Status.PAID:
        paid_at = (stripe_invoice.get("status_transitions") or {}).get("paid_at")
        defaults["paid_at"] = from_timestamp(paid_at) or timezone.now()
    invoice, _ = Invoice.objects.update_or_create(stripe_invoice_id=stripe_invoice["id"], defaults=defaults)
    return invoice


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
        started = time.perf_counter()
        failures, slowest = [], 0.0
        for creds in checks:
            deadline = time.monotonic() + 2.0
            one = time.perf_counter()
            try:
                with stripe_api.deadline_at(deadline):
                    stripe_client(creds).v1.balance.retrieve()
            except stripe.StripeError as exc:
                failures.append(f"{creds.source} key: {stripe_api.map_error(exc, 'balance').message}")
            slowest = max(slowest, time.perf_counter() - one)
        latency = (time.perf_counter() - started) * 1000
        if not failures and slowest >= HEALTH_SLOW_SECONDS:
            return HealthResult(
                HealthStatus.DEGRADED, f"answers, but slowly ({slowest * 1000:.0f} ms)", latency_ms=latency
            )
        if not failures:
            return HealthResult(HealthStatus.HEALTHY, f"{len(checks)} key(s) answered", latency_ms=latency)
        status = HealthStatus.UNHEALTHY if len(failures) == len(checks) else HealthStatus.DEGRADED
        return HealthResult(status, "; ".join(failures), latency_ms=latency)

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
        t = Tenant(ctx)
        customer = t.customer_id()
        since = timezone.now() - dt.timedelta(days=PERIOD_DAYS[params.period])
        window = {"customer": customer, "created": {"gte": int(since.timestamp())}}
        charges, more_charges = t.collect("list charges", t.v1.charges.list, window, MAX_LISTED)
        invoices, more_invoices = t.collect("list invoices", t.v1.invoices.list, window, MAX_LISTED)
        subs, more_subs = t.collect(
            "list subscriptions", t.v1.subscriptions.list, {"customer": customer, "status": "all"}, MAX_LISTED
        )
        totals: dict[str, dict[str, int]] = {}

        def bucket(currency: str) -> dict[str, int]:
            return totals.setdefault(
                currency, {"gross": 0, "refunded": 0, "charges": 0, "paid": 0, "open": 0}
            )

        for charge in charges:
            if charge.get("status") == "succeeded":
                b = bucket(charge["currency"])
                b["gross"] += charge["amount"]
                b["refunded"] += charge.get("amount_refunded") or 0
                b["charges"] += 1
        counts = InvoiceCounts()
        for invoice in invoices:
            status = invoice.get("status") or "draft"
            if hasattr(counts, status):
                setattr(counts, status, getattr(counts, status) + 1)
            b = bucket(invoice["currency"])
            b["paid"] += invoice.get("amount_paid") or 0
            if status == "open":
                b["open"] += invoice.get("amount_remaining") or 0
        by_status = {"active": 0, "trialing": 0, "past_due": 0, "paused": 0, "canceled": 0, "other": 0}
        mrr: dict[str, Decimal] = {}
        for sub in subs:
            status = sub.get("status") or "other"
            by_status[status if status in by_status else "other"] += 1
            if status in ("active", "past_due") and not sub.get("pause_collection"):
                for money in subscription_info(sub).monthly_amount:
                    mrr[money.currency] = mrr.get(money.currency, Decimal(0)) + money.amount
        return OverviewResult(
            customer_id=customer,
            period=params.period,
            since=since,
            totals=[
                CurrencyTotals(
                    currency=c,
                    gross=to_major(b["gross"], c),
                    refunded=to_major(b["refunded"], c),
                    net=to_major(b["gross"] - b["refunded"], c),
                    charges=b["charges"],
                    invoiced_paid=to_major(b["paid"], c),
                    outstanding=to_major(b["open"], c),
                )
                for c, b in sorted(totals.items())
            ],
            invoices=counts,
            subscriptions=SubscriptionSummary(
                **by_status, mrr=[Money(amount=v, currency=c) for c, v in sorted(mrr.items())]
            ),
            recent_charges=[charge_info(c) for c in charges[:5]],
            truncated=more_charges or more_invoices or more_subs,
        )

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
        t = Tenant(ctx)
        company = t.company
        currency = company.currency.lower()
        amounts = [
            to_minor(item.amount, currency, f"items[{i}].amount") for i, item in enumerate(params.items)
        ]
        due_date = self._due_date(params, company)
        local_customer = None
        if params.customer_id is not None:
            local_customer = Customer.objects.filter(company=company, pk=params.customer_id).first()
            if local_customer is None:
                raise MCPError(
                    ErrorCode.VALIDATION_ERROR,
                    f"customer_id: no customer {params.customer_id} for this tenant",
                    details={"field": "customer_id"},
                )
        fingerprint = _fingerprint(params)
        caller_key = callers_idempotency_key(ctx)
        if caller_key:
            request_key = caller_key
        else:
            # Without a key, equal params are the same request for about a day (this UTC day or
            # the one before), like Stripe's 24 h key lifetime; the same invoice next month is new.
            day = int(time.time() // 86400)
            request_key = f"auto-{day}-{fingerprint[:32]}"
            earlier = [t.key("invoice", f"auto-{day - 1}-{fingerprint[:32]}")]
        base = t.key("invoice", request_key)
        keys = [base] if caller_key else [base, *earlier]
        existing = Invoice.objects.filter(company=company, metadata__askpro_idempotency_key__in=keys).first()
        if existing is not None:
            if existing.metadata.get("askpro_request_hash") != fingerprint[:40]:
                raise MCPError(
                    ErrorCode.CONFLICT,
                    "idempotency_key: already used for a different create_invoice request",
                    details={"field": "idempotency_key"},
                )
            current = t.fetch("retrieve invoice", t.v1.invoices.retrieve, existing.stripe_invoice_id)
            return CreateInvoiceResult(
                invoice=invoice_info(current),
                local_invoice_id=existing.pk,
                idempotency_key=request_key,
                replayed=True,
            )
        customer = self._ensure_customer(t)
        metadata = {
            **params.metadata,
            "askpro_company_id": str(company.pk),
            "askpro_idempotency_key": base,
            "askpro_request_hash": fingerprint[:40],
        }
        invoice_params: dict[str, Any] = {
            "customer": customer,
            "currency": currency,
            "collection_method": "send_invoice",
            "due_date": int(dt.datetime.combine(due_date, dt.time(12), tzinfo=dt.UTC).timestamp()),
            "auto_advance": False,
            "pending_invoice_items_behavior": "exclude",
            "metadata": metadata,
        }
        if params.description:
            invoice_params["description"] = params.description
        invoice, replayed = t.fetch_replayed(
            "create invoice", t.v1.invoices.create, params=invoice_params, options={"idempotency_key": base}
        )
        for index, (item, amount) in enumerate(zip(params.items, amounts, strict=True)):
            t.fetch(
                "create invoice item",
                t.v1.invoice_items.create,
                params={
                    "customer": customer,
                    "invoice": invoice["id"],
                    "currency": currency,
                    # `amount` is the line total; a quantity is shown in the description because
                    # Stripe's per-unit pricing needs a product (price_data[product]).
                    "amount": amount * item.quantity,
                    "description": item.description
                    if item.quantity == 1
                    else f"{item.description} ({item.quantity} × {to_major(amount, currency)} {currency.upper()})",
                    "metadata": {"askpro_company_id": str(company.pk), "askpro_quantity": str(item.quantity)},
                },
                options={"idempotency_key": f"{base}:item:{index}"},
            )
        if params.finalize:
            invoice = t.fetch(
                "finalize invoice",
                t.v1.invoices.finalize_invoice,
                invoice["id"],
                params={"auto_advance": False},
                options={"idempotency_key": f"{base}:finalize"},
            )
        else:
            invoice = t.fetch("retrieve invoice", t.v1.invoices.retrieve, invoice["id"])
        local = _save_local_invoice(company, invoice, customer=local_customer)
        return CreateInvoiceResult(
            invoice=invoice_info(invoice),
            local_invoice_id=local.pk,
            idempotency_key=request_key,
            replayed=replayed,
        )

    def _due_date(self, params: CreateInvoiceParams, company: Company) -> dt.date:
        today = timezone.localdate()
        if params.due_date is not None and params.days_until_due is not None:
            raise MCPError(
                ErrorCode.VALIDATION_ERROR,
                "due_date: give either due_date or days_until_due, not both",
                details={"field": "due_date"},
            )
        if params.due_date is not None:
            if params.due_date <= today:
                raise MCPError(
                    ErrorCode.VALIDATION_ERROR,
                    "due_date: must be in the future",
                    details={"field": "due_date"},
                )
            return params.due_date
        return today + dt.timedelta(days=params.days_until_due or 30)

    def _ensure_customer(self, t: Tenant) -> str:
        """The tenant's Stripe customer, created once (an idempotency key per tenant makes
        concurrent first invoices meet on one customer)."""
        if t.company.stripe_customer_id:
            return t.company.stripe_customer_id
        created = t.fetch(
            "create customer",
            t.v1.customers.create,
            params={
                "name": t.company.name,
                "metadata": {"askpro_company_id": str(t.company.pk), "askpro_slug": t.company.slug},
            },
            options={"idempotency_key": t.key("customer")},
        )
        with transaction.atomic():
            company = Company.objects.select_for_update().get(pk=t.company.pk)
            if not company.stripe_customer_id:
                company.stripe_customer_id = created["id"]
                company.save(update_fields=["stripe_customer_id"])
        t.company.stripe_customer_id = company.stripe_customer_id
        return company.stripe_customer_id

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
        t = Tenant(ctx)
        invoice = t.owned("invoice", "invoice_id", params.invoice_id, t.v1.invoices.retrieve)
        already = invoice.get("status") != "draft"
        if not already:
            invoice = t.fetch(
                "finalize invoice",
                t.v1.invoices.finalize_invoice,
                invoice["id"],
                params={"auto_advance": False},
                options={"idempotency_key": t.key("finalize", invoice["id"])},
            )
        local = _save_local_invoice(t.company, invoice)
        return FinalizeInvoiceResult(
            invoice=invoice_info(invoice), local_invoice_id=local.pk, already_finalized=already
        )

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
        if (params.charge_id is None) == (params.payment_intent_id is None):
            raise MCPError(
                ErrorCode.VALIDATION_ERROR,
                "charge_id: give exactly one of charge_id and payment_intent_id",
                details={"field": "charge_id"},
            )
        t = Tenant(ctx)
        if params.charge_id:
            charge = t.owned("charge", "charge_id", params.charge_id, t.v1.charges.retrieve)
        else:
            intent = t.owned(
                "payment intent", "payment_intent_id", params.payment_intent_id, t.v1.payment_intents.retrieve
            )
            if not intent.get("latest_charge"):
                raise MCPError(
                    ErrorCode.VALIDATION_ERROR,
                    "payment_intent_id: this payment has no charge to refund",
                    details={"field": "payment_intent_id"},
                )
            latest = intent["latest_charge"]
            charge = t.fetch(
                "retrieve charge", t.v1.charges.retrieve, latest if isinstance(latest, str) else latest["id"]
            )
        currency = charge["currency"]
        refund_params: dict[str, Any] = {"charge": charge["id"], "reason": params.reason}
        if params.amount is not None:
            refund_params["amount"] = to_minor(params.amount, currency, "amount")
        caller_key = callers_idempotency_key(ctx)
        key = t.key("refund", caller_key or f"auto-{_fingerprint(refund_params)[:40]}")
        refund, replayed = t.fetch_replayed(
            "create refund", t.v1.refunds.create, params=refund_params, options={"idempotency_key": key}
        )
        after = t.fetch("retrieve charge", t.v1.charges.retrieve, charge["id"])
        return RefundResult(
            refund=RefundInfo(
                id=refund["id"],
                amount=to_major(refund["amount"], currency),
                currency=refund.get("currency") or currency,
                status=refund.get("status") or "unknown",
                reason=refund.get("reason"),
                charge=charge["id"],
                created=from_timestamp(refund.get("created")),
            ),
            charge_amount_refunded=to_major(after.get("amount_refunded"), currency),
            charge_fully_refunded=bool(after.get("refunded")),
            replayed=replayed,
        )

    # --- subscriptions ---
    def _subscription(self, t: Tenant, subscription_id: str | None) -> dict[str, Any]:
        if subscription_id is None:
            subscription_id = t.company.stripe_subscription_id or None
        if subscription_id is not None:
            return t.owned("subscription", "subscription_id", subscription_id, t.v1.subscriptions.retrieve)
        listed = t.fetch(
            "list subscriptions", t.v1.subscriptions.list, params={"customer": t.customer_id(), "limit": 1}
        )
        if not listed["data"]:
            raise MCPError(
                ErrorCode.NOT_FOUND,
                "subscription_id: this tenant has no subscription",
                details={"field": "subscription_id"},
            )
        return listed["data"][0]

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
        t = Tenant(ctx)
        return SubscriptionResult(
            subscription=subscription_info(self._subscription(t, params.subscription_id))
        )

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
        if (params.action == "change_plan") != (params.price_id is not None):
            message = (
                "price_id: is required for change_plan"
                if params.action == "change_plan"
                else f"price_id: only used by change_plan, not {params.action}"
            )
            raise MCPError(ErrorCode.VALIDATION_ERROR, message, details={"field": "price_id"})
        t = Tenant(ctx)
        sub = self._subscription(t, params.subscription_id)
        if sub.get("status") == "canceled":
            raise MCPError(
                ErrorCode.CONFLICT,
                f"subscription_id: {sub['id']} is already canceled",
                details={"field": "subscription_id"},
            )
        options = (
            {"idempotency_key": t.key("subscription", callers_idempotency_key(ctx))}
            if callers_idempotency_key(ctx)
            else {}
        )
        update: dict[str, Any] | None = None
        if params.action == "cancel" and not params.at_period_end:
            sub = t.fetch("cancel subscription", t.v1.subscriptions.cancel, sub["id"])
        elif params.action == "cancel":
            update = {"cancel_at_period_end": True}
        elif params.action == "pause":
            update = {"pause_collection": {"behavior": "void"}}
        elif params.action == "resume":
            update = {"pause_collection": "", "cancel_at_period_end": False}
        else:
            items = (sub.get("items") or {}).get("data") or []
            if not items:
                raise MCPError(ErrorCode.CONFLICT, "subscription_id: the subscription has no item to change")
            update = {
                "items": [{"id": items[0]["id"], "price": params.price_id}],
                "proration_behavior": params.proration_behavior,
            }
        if update is not None:
            try:
                sub = t.fetch(
                    "update subscription",
                    t.v1.subscriptions.update,
                    sub["id"],
                    params=update,
                    options=options,
                )
            except MCPError as exc:
                if params.action == "change_plan" and exc.details.get("field", "").startswith("items"):
                    exc.message = exc.message.replace(exc.details["field"], "price_id", 1)
                    exc.details["field"] = "price_id"
                raise
        self._sync_billing_status(t.company, sub)
        return UpdateSubscriptionResult(action=params.action, subscription=subscription_info(sub))

    def _sync_billing_status(self, company: Company, sub: dict[str, Any]) -> None:
        """Keep Company.billing_status in step when the tenant's own subscription changed."""
        if sub["id"] != company.stripe_subscription_id:
            return
        status = sub.get("status")
        if status in Company.BillingStatus.values:
            Company.objects.filter(pk=company.pk).update(billing_status=status)

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
