"""Helpers shared by the generated matrices: calling the DRF API and knowing tenant A's data."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.apps import apps

from askpro.models import Appointment, Branch, Call, Company, Customer, PhoneNumber, Plan

CALL_URL = "/api/v1/mcp/call"


def api_call(client, key: str | None, body: Any, *, raw: bool = False):
    """POST to the call endpoint; returns (status, parsed body, response)."""
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    data = body if raw else json.dumps(body)
    response = client.post(CALL_URL, data=data, content_type="application/json", **headers)
    return response.status_code, response.json(), response


def body_for(op, params: dict[str, Any], *, tenant: str | int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"service": op.service, "operation": op.name, "params": params}
    if tenant is not None:
        body["tenant"] = tenant
    return body


def tenant_markers(company: Company) -> list[str]:
    """Strings that identify a tenant's records; none may appear in another tenant's answers."""
    markers = {company.slug, company.name, company.retell_agent_id}
    for customer in Customer.objects.filter(company=company):
        markers |= {customer.name, customer.phone, customer.email}
    for call in Call.objects.filter(company=company):
        markers |= {call.summary, call.retell_call_id or "", call.from_number}
    for number in PhoneNumber.objects.filter(company=company):
        markers.add(number.number)
    for appointment in Appointment.objects.filter(company=company):
        markers |= {appointment.error_message, appointment.calcom_booking_uid or ""}
    from mcp_servers.messaging.models import Message

    for message in Message.objects.filter(company=company):
        markers |= {message.body, message.twilio_sid or ""}
    from mcp_servers.mail.models import OutboundEmail

    for email in OutboundEmail.objects.filter(company=company):
        markers |= {email.subject, email.to_email}
    return sorted(m for m in markers if m and len(m) >= 5)


def tenant_snapshot(company: Company) -> dict[str, list[dict[str, Any]]]:
    """Every row of every tenant-domain model that belongs to the company, for before/after checks."""
    snapshot: dict[str, list[dict[str, Any]]] = {
        "company": list(Company.objects.filter(pk=company.pk).values())
    }
    for model in apps.get_app_config("askpro").get_models():
        if any(f.name == "company" for f in model._meta.concrete_fields):
            snapshot[model._meta.label] = list(model.objects.filter(company=company).order_by("pk").values())
    return snapshot


def record_ids(company: Company) -> dict[str, Any]:
    """Tenant A's record identifiers by the param names operations use for them."""
    branch = Branch.objects.filter(company=company).first()
    customer = Customer.objects.filter(company=company).first()
    appointment = Appointment.objects.filter(company=company).first()
    call = Call.objects.filter(company=company).first()
    number = PhoneNumber.objects.filter(company=company).first()
    ids: dict[str, Any] = {
        "branch_id": branch.pk,
        "customer_id": customer.pk,
        "appointment_id": appointment.pk,
        "call_pk": call.pk,
        "call_id": call.retell_call_id,
        "retell_call_id": call.retell_call_id,
        "phone_number": number.number,
        "phone_number_id": number.pk,
        "phone": customer.phone,
        "customer_phone": customer.phone,
        "email": customer.email,
        "customer_email": customer.email,
        "agent_id": company.retell_agent_id,
        "customer_number": customer.phone,
        "message_id": _first_message_id(company),
        "email_id": _first_email_id(company),
        "booking_uid": Appointment.objects.filter(company=company)
        .exclude(calcom_booking_uid=None)
        .first()
        .calcom_booking_uid,
    }
    for model in apps.get_app_config("askpro").get_models():
        if any(f.name == "company" for f in model._meta.concrete_fields):
            row = model.objects.filter(company=company).first()
            if row is not None:
                ids.setdefault(f"{model._meta.model_name}_id", row.pk)
    return ids


def _first_message_id(company: Company) -> int | None:
    from mcp_servers.messaging.models import Message

    return Message.objects.filter(company=company).order_by("pk").values_list("pk", flat=True).first()


def _first_email_id(company: Company) -> int | None:
    from mcp_servers.mail.models import OutboundEmail

    return OutboundEmail.objects.filter(company=company).order_by("pk").values_list("pk", flat=True).first()


@pytest.fixture(scope="module")
def _tenants(django_db_setup, django_db_blocker):
    """Tenants A and B built once per module (each test still runs in its own rolled-back
    transaction, so nothing a test does survives it); removed when the module ends."""
    from conftest import make_tenant

    with django_db_blocker.unblock():
        a = make_tenant("alice-salon", name="Alice's Salon", phone="+4930111111")
        b = make_tenant("bob-practice", name="Bob's Practice", phone="+4940222222")
        for company, word in ((a, "alice"), (b, "bob")):
            # Upstream identifiers too, so that operations taking them are tried across tenants.
            agent = f"agent_{word}_0001"
            Company.objects.filter(pk=company.pk).update(retell_agent_id=agent)
            Branch.objects.filter(company=company).update(retell_agent_id=agent)
            Appointment.objects.filter(company=company).update(calcom_booking_uid=None)
            first = Appointment.objects.filter(company=company).order_by("pk").first()
            Appointment.objects.filter(pk=first.pk).update(calcom_booking_uid=f"bk_{word}_0001")
            # A message each (messaging server), with text only that tenant has.
            from mcp_servers.messaging.models import Message

            customer = Customer.objects.filter(company=company).first()
            Message.objects.create(
                company=company,
                channel="sms",
                direction="outbound",
                customer_number=customer.phone,
                body=f"{word} reminder: your appointment tomorrow",
                twilio_sid=f"SM{word:0>32}"[:34],
                status="delivered",
                status_rank=5,
                price="0.079",
                price_unit="USD",
            )
            # An email each (email server), with a subject only that tenant has.
            from mcp_servers.mail.models import OutboundEmail

            OutboundEmail.objects.create(
                company=company,
                to_email=f"{word}-customer@{word}.example",
                subject=f"{word} confirmation of your appointment",
                status="delivered",
                status_rank=4,
            )
        a.refresh_from_db()
        b.refresh_from_db()
    yield a, b
    with django_db_blocker.unblock():
        from mcp_core.models import ApiKey

        ApiKey.objects.filter(tenant__in=[a, b]).delete()
        Company.objects.filter(pk__in=[a.pk, b.pk]).delete()
        Plan.objects.filter(code="test", company__isnull=True).delete()


@pytest.fixture
def alice(_tenants, db):
    return Company.objects.get(pk=_tenants[0].pk)


@pytest.fixture
def bob(_tenants, db):
    return Company.objects.get(pk=_tenants[1].pk)


@pytest.fixture
def scoped_key(key_factory):
    """A key whose stored scopes are exactly `scopes` (even naming a service not registered)."""
    from mcp_core.api_keys import api_key_create
    from mcp_core.models import ApiKey

    def make(*, tenant, scopes: list[str]) -> str:
        key, raw = api_key_create(name="matrix key", scopes=["*"], tenant=tenant)
        ApiKey.objects.filter(pk=key.pk).update(scopes=scopes)
        return raw

    return make


def mcp_tool_call(client, key: str, tool: str, arguments: dict[str, Any], *, headers: dict | None = None):
    """tools/call over /mcp (2026-07-28), the body written by params.to_json (so inf is 1e400)."""
    from tests.mcp.helpers import MODERN, modern_meta

    from .params import to_json

    body = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments, "_meta": modern_meta()},
    }
    all_headers = {
        "Accept": "application/json, text/event-stream",
        "Authorization": f"Bearer {key}",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "tools/call",
        "Mcp-Name": tool,
        **(headers or {}),
    }
    return client.post("/mcp", to_json(body), content_type="application/json", headers=all_headers)
