"""Stripe invoice.*, customer.subscription.*, payment_intent.* -> Invoice rows and the
company's billing status.

Two kinds of Stripe account send events here:
- the platform's own account (verified by STRIPE_WEBHOOK_SECRET) bills the companies: the
  Stripe customer is Company.stripe_customer_id, and subscription/invoice events drive
  Company.billing_status;
- a tenant's own account (verified by that tenant's secret) bills the tenant's customers:
  invoices are stored for that tenant, and its billing status is never touched.
Stripe does not order deliveries, so each record keeps the `created` of the last event
applied and older events are skipped.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db import transaction

from askpro.models import Company, Customer, Invoice

from ..models import WebhookEvent
from . import HandlerError

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


def handle(event) -> str:
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
        newer = (
            WebhookEvent.objects.filter(
                provider="stripe",
                tenant=company,
                status=WebhookEvent.Status.PROCESSED,
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
