"""Invoices of one tenant: create (idempotently, with its items), finalize, and the local copy.

create_invoice is several Stripe calls (customer, invoice, one call per item, finalize), each
with an idempotency key derived from one request key, so that a retry after any failure
resumes the same invoice instead of making a second one.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from django.db import transaction
from django.utils import timezone

from askpro.models import Company, Customer, Invoice
from mcp_core.contracts import ErrorCode, MCPError

from .schemas import (
    CreateInvoiceParams,
    CreateInvoiceResult,
    FinalizeInvoiceResult,
    from_timestamp,
    invoice_info,
    to_major,
    to_minor,
)
from .tenancy import Tenant, callers_idempotency_key, fingerprint


def save_local_invoice(company: Company, stripe_invoice: dict[str, Any], **extra: Any) -> Invoice:
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


def create_invoice(t: Tenant, params: CreateInvoiceParams) -> CreateInvoiceResult:
    """Check everything first, replay an earlier equal request, else create the invoice, its
    items and (when asked) finalize it, then record it locally."""
    company = t.company
    currency = company.currency.lower()
    amounts = [to_minor(item.amount, currency, f"items[{i}].amount") for i, item in enumerate(params.items)]
    due_date = _due_date(params)
    local_customer = _local_customer(company, params.customer_id)
    request_hash = fingerprint(params)
    request_key, keys = _request_keys(t, request_hash)
    base = keys[0]
    existing = Invoice.objects.filter(company=company, metadata__askpro_idempotency_key__in=keys).first()
    if existing is not None:
        if existing.metadata.get("askpro_request_hash") != request_hash[:40]:
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
    customer = ensure_customer(t)
    invoice_params: dict[str, Any] = {
        "customer": customer,
        "currency": currency,
        "collection_method": "send_invoice",
        "due_date": int(dt.datetime.combine(due_date, dt.time(12), tzinfo=dt.UTC).timestamp()),
        "auto_advance": False,
        "pending_invoice_items_behavior": "exclude",
        "metadata": {
            **params.metadata,
            "askpro_company_id": str(company.pk),
            "askpro_idempotency_key": base,
            "askpro_request_hash": request_hash[:40],
        },
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
        invoice = _finalize(t, invoice["id"], f"{base}:finalize")
    else:
        invoice = t.fetch("retrieve invoice", t.v1.invoices.retrieve, invoice["id"])
    local = save_local_invoice(company, invoice, customer=local_customer)
    return CreateInvoiceResult(
        invoice=invoice_info(invoice),
        local_invoice_id=local.pk,
        idempotency_key=request_key,
        replayed=replayed,
    )


def finalize_invoice(t: Tenant, invoice_id: str) -> FinalizeInvoiceResult:
    """Finalize one of the tenant's draft invoices; a finalized one is returned as it is."""
    invoice = t.owned("invoice", "invoice_id", invoice_id, t.v1.invoices.retrieve)
    already = invoice.get("status") != "draft"
    if not already:
        invoice = _finalize(t, invoice["id"], t.key("finalize", invoice["id"]))
    local = save_local_invoice(t.company, invoice)
    return FinalizeInvoiceResult(
        invoice=invoice_info(invoice), local_invoice_id=local.pk, already_finalized=already
    )


def _finalize(t: Tenant, invoice_id: str, idempotency_key: str) -> dict[str, Any]:
    return t.fetch(
        "finalize invoice",
        t.v1.invoices.finalize_invoice,
        invoice_id,
        params={"auto_advance": False},
        options={"idempotency_key": idempotency_key},
    )


def _request_keys(t: Tenant, request_hash: str) -> tuple[str, list[str]]:
    """The request's key as the caller sees it, and the namespaced keys an earlier equal
    request may have used (the first one is this request's own)."""
    caller_key = callers_idempotency_key(t.ctx)
    if caller_key:
        return caller_key, [t.key("invoice", caller_key)]
    # Without a key, equal params are the same request for about a day (this UTC day or the
    # one before), like Stripe's 24 h key lifetime; the same invoice next month is new.
    day = int(time.time() // 86400)
    request_key = f"auto-{day}-{request_hash[:32]}"
    return request_key, [
        t.key("invoice", request_key),
        t.key("invoice", f"auto-{day - 1}-{request_hash[:32]}"),
    ]


def _local_customer(company: Company, customer_id: int | None) -> Customer | None:
    if customer_id is None:
        return None
    customer = Customer.objects.filter(company=company, pk=customer_id).first()
    if customer is None:
        raise MCPError(
            ErrorCode.VALIDATION_ERROR,
            f"customer_id: no customer {customer_id} for this tenant",
            details={"field": "customer_id"},
        )
    return customer


def _due_date(params: CreateInvoiceParams) -> dt.date:
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
                ErrorCode.VALIDATION_ERROR, "due_date: must be in the future", details={"field": "due_date"}
            )
        return params.due_date
    return today + dt.timedelta(days=params.days_until_due or 30)


def ensure_customer(t: Tenant) -> str:
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
