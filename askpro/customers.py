"""A tenant's customers, found by phone or e-mail (the webhook handlers of several servers
meet the same caller)."""

from __future__ import annotations

from .models import Customer


def customer_find_or_create(
    company_id: int, *, phone: str = "", email: str = "", name: str = ""
) -> Customer | None:
    """The company's customer with this phone (else e-mail), created if unknown. Callers hold
    the company row lock, so two events for one new caller cannot create two customers."""
    phone, email = (phone or "").strip(), (email or "").strip().lower()
    customer = None
    if phone:
        customer = Customer.objects.filter(company_id=company_id, phone=phone).order_by("pk").first()
    if customer is None and email:
        customer = Customer.objects.filter(company_id=company_id, email__iexact=email).order_by("pk").first()
    if customer is None:
        if not (phone or email):
            return None
        return Customer.objects.create(
            company_id=company_id, phone=phone, email=email, name=(name or phone or email)[:200]
        )
    changed = []
    if phone and not customer.phone:
        customer.phone = phone
        changed.append("phone")
    if email and not customer.email:
        customer.email = email
        changed.append("email")
    if name and customer.name in ("", customer.phone, customer.email):
        customer.name = name[:200]
        changed.append("name")
    if changed:
        customer.save(update_fields=changed)
    return customer
