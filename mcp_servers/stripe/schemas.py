"""Stripe's shapes: parameter and result structs, money conversion and the converters from
Stripe's objects to our results (no I/O here)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

import msgspec

from mcp_core.contracts import ErrorCode, MCPError
from mcp_core.schemas import BIGINT_MAX, Params, Result

Meta = msgspec.Meta

# Zero-decimal currencies carry whole units in Stripe's `amount` (Stripe docs, "Zero-decimal").
ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}  # fmt: skip
MAX_LISTED = 1000  # objects read per list for the overview; beyond that the result says truncated
PERIOD_DAYS = {"week": 7, "month": 30, "quarter": 91, "year": 365}

InvoiceId = Annotated[
    str, Meta(pattern=r"^in_[A-Za-z0-9_]+$", max_length=100, description="Stripe invoice id (in_...)")
]
ChargeId = Annotated[
    str, Meta(pattern=r"^(ch|py)_[A-Za-z0-9_]+$", max_length=100, description="Stripe charge id")
]
IntentId = Annotated[
    str, Meta(pattern=r"^pi_[A-Za-z0-9_]+$", max_length=100, description="Payment intent id")
]
SubscriptionId = Annotated[
    str, Meta(pattern=r"^sub_[A-Za-z0-9_]+$", max_length=100, description="Subscription id")
]
PriceId = Annotated[
    str, Meta(pattern=r"^price_[A-Za-z0-9_]+$", max_length=100, description="Stripe price id")
]
# A decimal string ("49.90") or a JSON number; converted with Decimal, never float arithmetic.
MoneyIn = Annotated[
    # Stripe's largest amount is 99,999,999 minor units (to_minor checks the currency's exact one).
    Annotated[str, Meta(pattern=r"^[0-9]{1,8}(\.[0-9]{1,3})?$", max_length=12)]
    | Annotated[int, Meta(le=99_999_999)]
    | Annotated[float, Meta(le=99_999_999)],
    Meta(description="Amount in major units of the tenant's currency (e.g. 49.90), greater than 0"),
]


# --- money -----------------------------------------------------------------------------------


def _exponent(currency: str) -> int:
    return 0 if currency.lower() in ZERO_DECIMAL else 2


def to_minor(amount: Decimal | int | float, currency: str, field: str) -> int:
    """Major units -> Stripe's integer minor units; refuses sub-cent or non-positive amounts."""
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        raise MCPError(
            ErrorCode.VALIDATION_ERROR, f"{field}: not a number", details={"field": field}
        ) from None
    if not value.is_finite() or value <= 0:
        raise MCPError(
            ErrorCode.VALIDATION_ERROR, f"{field}: must be greater than 0", details={"field": field}
        )
    minor = value.scaleb(_exponent(currency))
    if minor != minor.to_integral_value():
        raise MCPError(
            ErrorCode.VALIDATION_ERROR,
            f"{field}: {currency.upper()} allows at most {_exponent(currency)} decimal places",
            details={"field": field},
        )
    if minor > 99_999_999:  # Stripe's maximum amount (8 digits in minor units)
        raise MCPError(
            ErrorCode.VALIDATION_ERROR, f"{field}: exceeds Stripe's maximum amount", details={"field": field}
        )
    return int(minor)


def to_major(minor: int | None, currency: str) -> Decimal:
    return Decimal(int(minor or 0)).scaleb(-_exponent(currency))


def from_timestamp(value: int | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(value, tz=dt.UTC) if value else None


# --- results ---------------------------------------------------------------------------------


class Money(Result):
    amount: Decimal
    currency: str


class CustomerInfo(Result):
    id: str
    name: str | None
    email: str | None
    currency: str | None
    balance: Decimal
    delinquent: bool
    created: dt.datetime | None


class ChargeInfo(Result):
    id: str
    amount: Decimal
    amount_refunded: Decimal
    currency: str
    status: str
    refunded: bool
    description: str | None
    payment_intent: str | None
    created: dt.datetime | None


class InvoiceInfo(Result):
    id: str
    number: str | None
    status: str
    currency: str
    subtotal: Decimal
    total: Decimal
    amount_due: Decimal
    amount_paid: Decimal
    amount_remaining: Decimal
    due_date: dt.datetime | None
    hosted_invoice_url: str | None
    invoice_pdf: str | None
    created: dt.datetime | None
    metadata: dict[str, str]


class SubscriptionItemInfo(Result):
    id: str
    price_id: str
    product: str | None
    nickname: str | None
    unit_amount: Decimal
    currency: str
    interval: str | None
    interval_count: int
    quantity: int


class SubscriptionInfo(Result):
    id: str
    status: str
    customer: str
    cancel_at_period_end: bool
    cancel_at: dt.datetime | None
    canceled_at: dt.datetime | None
    paused: bool
    pause_behavior: str | None
    current_period_start: dt.datetime | None
    current_period_end: dt.datetime | None
    items: list[SubscriptionItemInfo]
    monthly_amount: list[Money]


class CurrencyTotals(Result):
    currency: str
    gross: Annotated[Decimal, Meta(description="Succeeded charges in the period")]
    refunded: Decimal
    net: Decimal
    charges: int
    invoiced_paid: Annotated[Decimal, Meta(description="amount_paid of invoices created in the period")]
    outstanding: Annotated[
        Decimal, Meta(description="amount_remaining of open invoices created in the period")
    ]


class InvoiceCounts(Result):
    draft: int = 0
    open: int = 0
    paid: int = 0
    void: int = 0
    uncollectible: int = 0


class SubscriptionSummary(Result):
    active: int
    trialing: int
    past_due: int
    paused: int
    canceled: int
    other: int
    mrr: Annotated[
        list[Money], Meta(description="Monthly recurring revenue of active and past_due subscriptions")
    ]


class OverviewResult(Result):
    customer_id: str
    period: str
    since: dt.datetime
    totals: list[CurrencyTotals]
    invoices: InvoiceCounts
    subscriptions: SubscriptionSummary
    recent_charges: list[ChargeInfo]
    truncated: Annotated[bool, Meta(description=f"True when a list had more than {MAX_LISTED} objects")]


class CustomerPaymentsResult(Result):
    customer: CustomerInfo
    charges: list[ChargeInfo]
    invoices: list[InvoiceInfo]
    has_more_charges: bool
    has_more_invoices: bool


class CreateInvoiceResult(Result):
    invoice: InvoiceInfo
    local_invoice_id: int
    idempotency_key: str
    replayed: Annotated[bool, Meta(description="True when this request had already been carried out")]


class FinalizeInvoiceResult(Result):
    invoice: InvoiceInfo
    local_invoice_id: int
    already_finalized: bool


class RefundInfo(Result):
    id: str
    amount: Decimal
    currency: str
    status: str
    reason: str | None
    charge: str
    created: dt.datetime | None


class RefundResult(Result):
    refund: RefundInfo
    charge_amount_refunded: Decimal
    charge_fully_refunded: bool
    replayed: bool


class SubscriptionResult(Result):
    subscription: SubscriptionInfo


class UpdateSubscriptionResult(Result):
    action: str
    subscription: SubscriptionInfo


class TestConnectionResult(Result):
    connected: bool
    credentials: Annotated[str, Meta(description="tenant (the tenant's own key) or platform")]
    livemode: bool
    latency_ms: float
    customer: CustomerInfo | None
    customer_problem: str | None


# --- params ----------------------------------------------------------------------------------


class OverviewParams(Params):
    period: Literal["week", "month", "quarter", "year"] = "month"


class CustomerPaymentsParams(Params):
    limit: Annotated[int, Meta(ge=1, le=100, description="Charges and invoices to return (each)")] = 20


class InvoiceItemIn(Params):
    description: Annotated[str, Meta(min_length=1, max_length=500)]
    amount: MoneyIn
    quantity: Annotated[int, Meta(ge=1, le=10_000)] = 1


class CreateInvoiceParams(Params):
    items: Annotated[list[InvoiceItemIn], Meta(min_length=1, max_length=50)]
    due_date: Annotated[dt.date | None, Meta(description="Payment due date (future); default 30 days")] = None
    days_until_due: Annotated[int, Meta(ge=1, le=365)] | None = None
    description: Annotated[str, Meta(max_length=500)] | None = None
    metadata: Annotated[
        dict[Annotated[str, Meta(min_length=1, max_length=40)], Annotated[str, Meta(max_length=500)]],
        Meta(max_length=20),
    ] = msgspec.field(default_factory=dict)
    customer_id: (
        Annotated[int, Meta(ge=1, le=BIGINT_MAX, description="Local customer the invoice is about")] | None
    ) = None
    finalize: Annotated[bool, Meta(description="Finalize at once (status open, number assigned)")] = False


class FinalizeInvoiceParams(Params):
    invoice_id: InvoiceId


class RefundParams(Params):
    charge_id: ChargeId | None = None
    payment_intent_id: IntentId | None = None
    amount: Annotated[
        MoneyIn | None, Meta(description="Partial refund in major units; default: all that is left")
    ] = None
    reason: Literal["requested_by_customer", "duplicate", "fraudulent"] = "requested_by_customer"


class GetSubscriptionParams(Params):
    subscription_id: Annotated[
        SubscriptionId | None, Meta(description="Default: the tenant's subscription (Company or newest)")
    ] = None


class UpdateSubscriptionParams(Params):
    action: Literal["cancel", "pause", "resume", "change_plan"]
    subscription_id: SubscriptionId | None = None
    price_id: Annotated[PriceId | None, Meta(description="New price (change_plan only)")] = None
    at_period_end: Annotated[bool, Meta(description="cancel: at the end of the period (default) or now")] = (
        True
    )
    proration_behavior: Literal["create_prorations", "none", "always_invoice"] = "create_prorations"


# --- mapping Stripe objects ------------------------------------------------------------------


def customer_info(c: dict[str, Any]) -> CustomerInfo:
    currency = c.get("currency") or "eur"
    return CustomerInfo(
        id=c["id"],
        name=c.get("name"),
        email=c.get("email"),
        currency=c.get("currency"),
        balance=to_major(c.get("balance"), currency),
        delinquent=bool(c.get("delinquent")),
        created=from_timestamp(c.get("created")),
    )


def charge_info(c: dict[str, Any]) -> ChargeInfo:
    return ChargeInfo(
        id=c["id"],
        amount=to_major(c.get("amount"), c["currency"]),
        amount_refunded=to_major(c.get("amount_refunded"), c["currency"]),
        currency=c["currency"],
        status=c.get("status") or "unknown",
        refunded=bool(c.get("refunded")),
        description=c.get("description"),
        payment_intent=c.get("payment_intent"),
        created=from_timestamp(c.get("created")),
    )


def invoice_info(i: dict[str, Any]) -> InvoiceInfo:
    cur = i["currency"]
    return InvoiceInfo(
        id=i["id"],
        number=i.get("number"),
        status=i.get("status") or "draft",
        currency=cur,
        subtotal=to_major(i.get("subtotal"), cur),
        total=to_major(i.get("total"), cur),
        amount_due=to_major(i.get("amount_due"), cur),
        amount_paid=to_major(i.get("amount_paid"), cur),
        amount_remaining=to_major(i.get("amount_remaining"), cur),
        due_date=from_timestamp(i.get("due_date")),
        hosted_invoice_url=i.get("hosted_invoice_url"),
        invoice_pdf=i.get("invoice_pdf"),
        created=from_timestamp(i.get("created")),
        metadata=dict(i.get("metadata") or {}),
    )


def _monthly(unit_amount: int, quantity: int, recurring: dict[str, Any] | None) -> Decimal:
    """A recurring price normalised to one month (minor units)."""
    if not recurring:
        return Decimal(0)
    per_month = {
        "day": Decimal(365) / 12,
        "week": Decimal(52) / 12,
        "month": Decimal(1),
        "year": Decimal(1) / 12,
    }
    count = int(recurring.get("interval_count") or 1)
    return Decimal(unit_amount * quantity) * per_month[recurring["interval"]] / count


def subscription_info(s: dict[str, Any]) -> SubscriptionInfo:
    items = []
    monthly: dict[str, Decimal] = {}
    raw_items = (s.get("items") or {}).get("data") or []
    for item in raw_items:
        price = item.get("price") or {}
        currency = price.get("currency") or s.get("currency") or "eur"
        recurring = price.get("recurring") or {}
        quantity = int(item.get("quantity") or 1)
        items.append(
            SubscriptionItemInfo(
                id=item["id"],
                price_id=price.get("id", ""),
                product=price.get("product") if isinstance(price.get("product"), str) else None,
                nickname=price.get("nickname"),
                unit_amount=to_major(price.get("unit_amount"), currency),
                currency=currency,
                interval=recurring.get("interval"),
                interval_count=int(recurring.get("interval_count") or 1),
                quantity=quantity,
            )
        )
        monthly[currency] = monthly.get(currency, Decimal(0)) + _monthly(
            int(price.get("unit_amount") or 0), quantity, recurring
        )
    first = raw_items[0] if raw_items else {}
    pause = s.get("pause_collection") or None
    return SubscriptionInfo(
        id=s["id"],
        status=s.get("status") or "unknown",
        customer=s.get("customer") or "",
        cancel_at_period_end=bool(s.get("cancel_at_period_end")),
        cancel_at=from_timestamp(s.get("cancel_at")),
        canceled_at=from_timestamp(s.get("canceled_at")),
        paused=pause is not None,
        pause_behavior=pause.get("behavior") if pause else None,
        # Since API 2025-03-31 the period lives on the items, not on the subscription.
        current_period_start=from_timestamp(
            first.get("current_period_start") or s.get("current_period_start")
        ),
        current_period_end=from_timestamp(first.get("current_period_end") or s.get("current_period_end")),
        items=items,
        monthly_amount=[
            Money(amount=to_major(int(v.to_integral_value()), c), currency=c)
            for c, v in sorted(monthly.items())
        ],
    )
