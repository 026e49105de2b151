"""Stripe's inbound webhooks: the Stripe-Signature verifier, the event's identity and
tenant, and the handler of invoice.*, customer.subscription.*, payment_intent.* -> Invoice
rows and the company's billing status.

Two kinds of Stripe account send events here:
- the platform's own account (verified by STRIPE_WEBHOOK_SECRET) bills the companies: the
  Stripe customer is Company.stripe_customer_id, and subscription/invoice events drive
  Company.billing_status;
- a tenant's own account (verified by that tenant's secret) bills the tenant's customers:
  invoices are stored for that tenant, and its billing status is never touched.
Stripe does not order deliveries, so each record keeps the `created` of the last event
applied and older events are skipped.

Signature headers are checked for length and shape before anything is parsed out of them (a
4,301-digit timestamp is a ValueError in int()), and timestamps must lie within the tolerance
in both directions: Stripe's library only refuses old ones, we refuse future ones too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from decimal import Decimal
from typing import Any

import stripe
from django.db import transaction

from askpro.models import Company, Customer, Invoice
from mcp_core.tenancy import TenantCredentials
from mcp_core.webhooks import (
    SIGNATURE_MAX_CHARS,
    EventIdentity,
    HandlerError,
    SignatureError,
    WebhookDelivery,
    check_tolerance,
    unverified_json,
    verified_json,
    webhook,
)

STRIPE_TOLERANCE_S = 300  # stripe-python's DEFAULT_TOLERANCE
_STRIPE_ITEM = re.compile(r"^([a-z][a-z0-9]{0,7})=([A-Za-z0-9_]{1,128})$")
_STRIPE_MAX_ITEMS = 16
STRIPE_WEBHOOK_SECRET = TenantCredentials(
    service="stripe",
    tenant_field="stripe_webhook_secret",
    platform_setting="STRIPE_WEBHOOK_SECRET",
    what="Stripe webhook secret",
)


def _stripe_timestamp(header: str) -> int:
    """The `t` of a Stripe-Signature header whose shape is sound: comma-separated key=value
    items, one `t` of at most 12 digits, at least one `v1`."""
    if len(header) > SIGNATURE_MAX_CHARS:
        raise SignatureError(
            "malformed_signature", f"the signature header is longer than {SIGNATURE_MAX_CHARS}"
        )
    items = header.split(",")
    if len(items) > _STRIPE_MAX_ITEMS:
        raise SignatureError("malformed_signature")
    pairs = [_STRIPE_ITEM.match(item.strip()) for item in items]
    if not all(pairs):
        raise SignatureError("malformed_signature")
    stamps = [m.group(2) for m in pairs if m.group(1) == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit() or len(stamps[0]) > 12:
        raise SignatureError("malformed_signature", "the signature header needs one t=<unix seconds>")
    if not any(m.group(1) == "v1" for m in pairs):
        raise SignatureError("malformed_signature", "the signature header has no v1 signature")
    return int(stamps[0])


def verify_stripe(raw: bytes, header: str | None, secret: str) -> dict[str, Any]:
    """Stripe-Signature `t=..,v1=..` over `t.body`, through the stripe library (300 s tolerance).
    Returns the event as plain JSON data."""
    if not header:
        raise SignatureError("missing_signature")
    if not secret:
        raise SignatureError("no_secret")
    check_tolerance(_stripe_timestamp(header), STRIPE_TOLERANCE_S, time.time())
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SignatureError("bad_payload", f"body: not valid UTF-8 (byte {exc.start})") from None
    try:
        # The signature only: the stored payload is the verified JSON itself (verified_json),
        # parsed once, under our depth and content checks.
        stripe.WebhookSignature.verify_header(text, header, secret, tolerance=STRIPE_TOLERANCE_S)
    except stripe.SignatureVerificationError as exc:
        reason = "stale_timestamp" if "tolerance" in str(exc).lower() else "bad_signature"
        raise SignatureError(reason) from None
    return verified_json(raw)


def verify(delivery: WebhookDelivery, secret: str) -> dict[str, Any]:
    """The declared verifier: the signature header over the raw body."""
    return verify_stripe(delivery.body, delivery.signature, secret)


def identify(payload: dict[str, Any], raw: bytes) -> EventIdentity:
    """Stripe's event id; a body without one is keyed by its hash."""
    event_id = str(payload.get("id") or "")
    key = event_id or f"sha256:{hashlib.sha256(raw).hexdigest()}"
    return EventIdentity(event_id, str(payload.get("type") or "unknown"), key)


def claimed_tenant(delivery: WebhookDelivery) -> int | None:
    """The company whose Stripe customer the (unverified) event's object names."""
    payload = unverified_json(delivery.body) or {}
    data = payload.get("data") or {}
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        return None
    customer = obj.get("id") if obj.get("object") == "customer" else obj.get("customer")
    if isinstance(customer, str) and customer:
        return Company.objects.filter(stripe_customer_id=customer).values_list("pk", flat=True).first()
    return None


_SUBSCRIPTION_STATUS = {
    "trialing": Company.BillingStatus.TRIALING,
    "active": Company.BillingStatus.ACTIVE,
    "past_due": Company.BillingStatus.PAST_DUE,
    "unpaid": Company.BillingStatus.UNPAID,
    "canceled": Company.BillingStatus.CANCELED,
    "incomplete": Company.BillingStatus.PAST_DUE,
    "incomplete_expired": Company.BillingStatus.CANCELED,
    "paused": Company.BillingStatus.PAST_DUE,
}
_ZERO_DECIMAL = {
    "bif",
    "clp",
    "djf",
    "gnf",
    "jpy",
    "kmf",
    "krw",
    "mga",
    "pyg",
    "rwf",
    "ugx",
    "vnd",
    "vuv",
    "xaf",
    "xof",
    "xpf",
}


@webhook(
    provider="stripe",
    signature_header="Stripe-Signature",
    verify=verify,
    secret=STRIPE_WEBHOOK_SECRET,
    identify=identify,
    claimed_tenant=claimed_tenant,
    sandbox_signer="mcp_servers.stripe.sandbox.sign_webhook",
)
def handle(event) -> str:
    """Apply an invoice, subscription or payment event (see the module docstring)."""
    kind = str(event.payload.get("type") or "")
    obj = (event.payload.get("data") or {}).get("object")
    if not isinstance(obj, dict):
        raise HandlerError("data.object: missing")
    created = int(event.payload.get("created") or 0)
    if kind.startswith("invoice."):
        return _invoice(event, kind, obj, created)
    if kind.startswith("customer.subscription."):
        return _subscription(event, kind, obj, created)
    if kind.startswith("payment_intent."):
        return _payment_intent(event, kind, obj, created)
    return f"ignored {kind}"


def _platform_company(event, customer_id: Any) -> Company | None:
    if event.verified_by != "platform" or not isinstance(customer_id, str) or not customer_id:
        return None
    return Company.objects.select_for_update().filter(stripe_customer_id=customer_id).first()


def _money(amount: Any, currency: str) -> Decimal:
    if not isinstance(amount, int):
        return Decimal("0")
    return Decimal(amount) if currency.lower() in _ZERO_DECIMAL else Decimal(amount) / 100


def _ts(value: Any) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(value, tz=dt.UTC) if isinstance(value, int) and value > 0 else None


def _invoice(event, kind: str, obj: dict[str, Any], created: int) -> str:
    with transaction.atomic():
        company = _platform_company(event, obj.get("customer"))
        if company is None:
            if event.verified_by != "tenant":
                raise HandlerError(f"invoice customer {obj.get('customer')!r} is not a known company")
            company = Company.objects.select_for_update().get(pk=event.tenant_id)
        event.tenant_id = company.pk
        invoice = Invoice.objects.select_for_update().filter(stripe_invoice_id=obj.get("id")).first()
        if invoice is not None and invoice.company_id != company.pk:
            raise HandlerError("the invoice belongs to another tenant")
        if invoice is not None and int((invoice.metadata or {}).get("stripe_event_created", 0)) > created:
            return f"skipped {kind}: older than the last applied event"
        if invoice is None:
            if not obj.get("id"):
                raise HandlerError("data.object.id: missing")
            invoice = Invoice(company=company, stripe_invoice_id=obj["id"])
        currency = str(obj.get("currency") or company.currency or "eur")
        status = obj.get("status")
        if status in Invoice.Status.values:
            invoice.status = status
        invoice.number = obj.get("number") or invoice.number
        invoice.currency = currency.upper()[:3]
        invoice.subtotal = _money(obj.get("subtotal"), currency)
        invoice.total = _money(obj.get("total"), currency)
        invoice.tax = invoice.total - invoice.subtotal if invoice.total >= invoice.subtotal else Decimal("0")
        due = _ts(obj.get("due_date"))
        invoice.due_date = due.date() if due else invoice.due_date
        paid_at = _ts((obj.get("status_transitions") or {}).get("paid_at"))
        invoice.paid_at = paid_at or invoice.paid_at
        if event.verified_by == "tenant" and invoice.customer_id is None:
            email = obj.get("customer_email")
            if email:
                invoice.customer = Customer.objects.filter(company=company, email__iexact=email).first()
        invoice.metadata = {
            **(invoice.metadata or {}),
            "stripe_event_created": created,
            "stripe_last_event": kind,
        }
        invoice.save()
        billing = _billing_from_invoice(company, kind) if event.verified_by == "platform" else ""
    return f"invoice {invoice.pk} {invoice.status}{billing}"


def _billing_from_invoice(company: Company, kind: str) -> str:
    """The platform's invoice to a company: paid -> active, payment failed -> past_due."""
    new = None
    if kind == "invoice.paid" and company.billing_status in (
        Company.BillingStatus.PAST_DUE,
        Company.BillingStatus.UNPAID,
    ):
        new = Company.BillingStatus.ACTIVE
    elif kind == "invoice.payment_failed" and company.billing_status == Company.BillingStatus.ACTIVE:
        new = Company.BillingStatus.PAST_DUE
    if new is None:
        return ""
    Company.objects.filter(pk=company.pk).update(billing_status=new)
    return f"; billing {new}"


def _subscription(event, kind: str, obj: dict[str, Any], created: int) -> str:
    if event.verified_by != "platform":
        return "ignored: a tenant's own subscription events do not change platform billing"
    with transaction.atomic():
        company = _platform_company(event, obj.get("customer"))
        if company is None:
            raise HandlerError(f"subscription customer {obj.get('customer')!r} is not a known company")
        event.tenant_id = company.pk
        # The stored event's own model (the webhooks app's), reached through the event so that
        # this server imports no other server.
        stored = type(event)
        newer = (
            stored._default_manager.filter(
                provider="stripe",
                tenant=company,
                status=stored.Status.PROCESSED,
                type__startswith="customer.subscription.",
                payload__created__gt=created,
            )
            .exclude(pk=event.pk)
            .exists()
        )
        if newer:
            return f"skipped {kind}: a newer subscription event was applied"
        status = "canceled" if kind == "customer.subscription.deleted" else str(obj.get("status") or "")
        billing = _SUBSCRIPTION_STATUS.get(status)
        if billing is None:
            raise HandlerError(f"subscription status {status!r} is unknown")
        Company.objects.filter(pk=company.pk).update(
            billing_status=billing, stripe_subscription_id=obj.get("id") or company.stripe_subscription_id
        )
    return f"company {company.pk} billing {billing}"


def _payment_intent(event, kind: str, obj: dict[str, Any], created: int) -> str:
    """Record the payment's outcome on the invoice it pays, when it names one."""
    invoice_id = obj.get("invoice") or (obj.get("metadata") or {}).get("invoice_id")
    if not invoice_id:
        return f"{kind}: no invoice referenced"
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().filter(stripe_invoice_id=invoice_id).first()
        if invoice is None:
            raise HandlerError(f"payment_intent names unknown invoice {invoice_id!r}")
        if event.verified_by == "tenant" and invoice.company_id != event.tenant_id:
            raise HandlerError("the invoice belongs to another tenant")
        event.tenant_id = invoice.company_id
        metadata = dict(invoice.metadata or {})
        if int(metadata.get("payment_event_created", 0)) > created:
            return f"skipped {kind}: older than the last applied payment event"
        metadata.update(
            payment_intent=obj.get("id"), payment_status=obj.get("status"), payment_event_created=created
        )
        invoice.metadata = metadata
        if kind == "payment_intent.succeeded" and invoice.status == Invoice.Status.OPEN:
            invoice.status = Invoice.Status.PAID
            invoice.paid_at = invoice.paid_at or _ts(created)
        invoice.save()
    return f"invoice {invoice.pk} payment {obj.get('status')}"
