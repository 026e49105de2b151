"""The providers' sandboxes deliver to the live server over HTTP, signed their own way."""

from __future__ import annotations

import pytest

from askpro.models import Call, Company, Invoice
from mcp_servers.calcom.sandbox import CalcomSandbox
from mcp_servers.retell.sandbox import RetellSandbox
from mcp_servers.stripe.sandbox import StripeSandbox
from mcp_servers.webhooks.models import WebhookEvent

from .conftest import CALCOM_SECRET, RETELL_KEY, STRIPE_SECRET, retell_call


@pytest.mark.django_db(transaction=True)
def test_it_accepts_deliveries_over_http_from_the_providers_sandboxes(live_server, alice):
    """Each sandbox's own send_webhook (a real HTTP POST, signed the provider's way) against
    the live server: all accepted, stored and processed; a wrong secret is refused."""
    Company.objects.filter(pk=alice.pk).update(stripe_customer_id="cus_live")
    base = f"{live_server.url}/webhooks"
    retell = RetellSandbox().send_webhook(
        f"{base}/retell", "call_started", retell_call(call_id="call_live"), RETELL_KEY
    )
    stripe_invoice = {
        "id": "in_live",
        "object": "invoice",
        "customer": "cus_live",
        "status": "open",
        "total": 100,
    }
    stripe = StripeSandbox().send_webhook(
        f"{base}/stripe", "invoice.finalized", stripe_invoice, STRIPE_SECRET
    )
    booking = {
        "uid": "bk_live",
        "eventTypeId": 42,
        "startTime": "2026-12-01T09:00:00Z",
        "endTime": "2026-12-01T09:30:00Z",
        "status": "ACCEPTED",
        "attendees": [{"name": "Live", "email": "live@example.com", "timeZone": "Europe/Berlin"}],
    }
    calcom_status = CalcomSandbox().send_webhook(f"{base}/calcom", "BOOKING_CREATED", booking, CALCOM_SECRET)
    assert (retell.status_code, stripe.status_code, calcom_status) == (202, 202, 202)
    assert sorted(WebhookEvent.objects.values_list("provider", "status")) == [
        ("calcom", "processed"),
        ("retell", "processed"),
        ("stripe", "processed"),
    ]
    assert Call.objects.get(retell_call_id="call_live").company == alice
    assert Invoice.objects.get(stripe_invoice_id="in_live").company == alice
    refused = StripeSandbox().send_webhook(
        f"{base}/stripe", "invoice.finalized", stripe_invoice, "whsec_wrong"
    )
    assert refused.status_code == 401
