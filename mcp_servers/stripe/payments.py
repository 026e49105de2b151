"""Payments of one tenant: the period overview (charges, invoices and subscriptions summed per
currency) and refunds of a charge or of a payment intent's charge."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.utils import timezone

from mcp_core.contracts import ErrorCode, MCPError

from .schemas import (
    MAX_LISTED,
    PERIOD_DAYS,
    CurrencyTotals,
    InvoiceCounts,
    Money,
    OverviewResult,
    RefundInfo,
    RefundParams,
    RefundResult,
    SubscriptionSummary,
    charge_info,
    from_timestamp,
    subscription_info,
    to_major,
    to_minor,
)
from .tenancy import Tenant, callers_idempotency_key, fingerprint


def overview(t: Tenant, period: str) -> OverviewResult:
    """Read the customer's charges, invoices and subscriptions of the period (up to MAX_LISTED
    each) and sum them per currency."""
    customer = t.customer_id()
    since = timezone.now() - dt.timedelta(days=PERIOD_DAYS[period])
    window = {"customer": customer, "created": {"gte": int(since.timestamp())}}
    charges, more_charges = t.collect("list charges", t.v1.charges.list, window, MAX_LISTED)
    invoices, more_invoices = t.collect("list invoices", t.v1.invoices.list, window, MAX_LISTED)
    subs, more_subs = t.collect(
        "list subscriptions", t.v1.subscriptions.list, {"customer": customer, "status": "all"}, MAX_LISTED
    )
    totals: dict[str, dict[str, int]] = {}

    def bucket(currency: str) -> dict[str, int]:
        return totals.setdefault(currency, {"gross": 0, "refunded": 0, "charges": 0, "paid": 0, "open": 0})

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
    return OverviewResult(
        customer_id=customer,
        period=period,
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
        subscriptions=_subscription_summary(subs),
        recent_charges=[charge_info(c) for c in charges[:5]],
        truncated=more_charges or more_invoices or more_subs,
    )


def _subscription_summary(subs: list[dict[str, Any]]) -> SubscriptionSummary:
    by_status = {"active": 0, "trialing": 0, "past_due": 0, "paused": 0, "canceled": 0, "other": 0}
    mrr: dict[str, Decimal] = {}
    for sub in subs:
        status = sub.get("status") or "other"
        by_status[status if status in by_status else "other"] += 1
        if status in ("active", "past_due") and not sub.get("pause_collection"):
            for money in subscription_info(sub).monthly_amount:
                mrr[money.currency] = mrr.get(money.currency, Decimal(0)) + money.amount
    return SubscriptionSummary(**by_status, mrr=[Money(amount=v, currency=c) for c, v in sorted(mrr.items())])


def check_refund_target(params: RefundParams) -> None:
    if (params.charge_id is None) == (params.payment_intent_id is None):
        raise MCPError(
            ErrorCode.VALIDATION_ERROR,
            "charge_id: give exactly one of charge_id and payment_intent_id",
            details={"field": "charge_id"},
        )


def refund(t: Tenant, params: RefundParams) -> RefundResult:
    """Refund the tenant's charge (fully or partly) under an idempotency key: the caller's, or
    one derived from charge, amount and reason, so an equal request within 24 h is one refund."""
    charge = _refundable_charge(t, params)
    currency = charge["currency"]
    refund_params: dict[str, Any] = {"charge": charge["id"], "reason": params.reason}
    if params.amount is not None:
        refund_params["amount"] = to_minor(params.amount, currency, "amount")
    caller_key = callers_idempotency_key(t.ctx)
    key = t.key("refund", caller_key or f"auto-{fingerprint(refund_params)[:40]}")
    made, replayed = t.fetch_replayed(
        "create refund", t.v1.refunds.create, params=refund_params, options={"idempotency_key": key}
    )
    after = t.fetch("retrieve charge", t.v1.charges.retrieve, charge["id"])
    return RefundResult(
        refund=RefundInfo(
            id=made["id"],
            amount=to_major(made["amount"], currency),
            currency=made.get("currency") or currency,
            status=made.get("status") or "unknown",
            reason=made.get("reason"),
            charge=charge["id"],
            created=from_timestamp(made.get("created")),
        ),
        charge_amount_refunded=to_major(after.get("amount_refunded"), currency),
        charge_fully_refunded=bool(after.get("refunded")),
        replayed=replayed,
    )


def _refundable_charge(t: Tenant, params: RefundParams) -> dict[str, Any]:
    """The tenant's charge, named directly or as a payment intent's latest charge."""
    if params.charge_id:
        return t.owned("charge", "charge_id", params.charge_id, t.v1.charges.retrieve)
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
    return t.fetch(
        "retrieve charge", t.v1.charges.retrieve, latest if isinstance(latest, str) else latest["id"]
    )
