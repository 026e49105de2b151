"""Ingestion: signed deliveries stored and processed, forged ones refused and only counted,
duplicates processed once, tenant secrets that can never widen what a delivery may touch."""

from __future__ import annotations

import json
import time

import pytest

from askpro.models import Call, Company, Invoice
from mcp_servers.webhooks.models import RejectedDelivery, WebhookEvent
from tests.celery_worker import forget_broker_connections

from .conftest import CALCOM_SECRET, calcom_body, post, retell_body, retell_call, signed, stripe_body


def _rejections(provider):
    return {r.reason: r.count for r in RejectedDelivery.objects.filter(provider=provider)}


@pytest.mark.django_db
def test_it_stores_and_processes_a_signed_retell_delivery(client, alice, django_capture_on_commit_callbacks):
    body = retell_body({"event": "call_started", "call": retell_call()})
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, "retell", body, signed("retell", body))
    assert response.status_code == 202
    event = WebhookEvent.objects.get()
    assert (event.provider, event.type, event.event_id, event.tenant) == (
        "retell",
        "call_started",
        "call_abc",
        alice,
    )
    assert event.status == "processed" and event.attempts == 1
    call = Call.objects.get(retell_call_id="call_abc")
    assert call.company == alice and call.status == "ongoing"
    assert call.branch == alice.branches.get() and call.customer.phone == "+4915550001"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "provider,make_body",
    [
        (
            "stripe",
            lambda: stripe_body("invoice.paid", {"id": "in_1", "object": "invoice", "customer": "cus_x"}),
        ),
        ("calcom", lambda: calcom_body("BOOKING_CREATED", {"uid": "bk_1"})),
        ("retell", lambda: retell_body({"event": "call_ended", "call": retell_call()})),
    ],
)
def test_it_refuses_forged_deliveries_with_401_and_stores_only_a_count(client, provider, make_body):
    body = make_body()
    good = signed(provider, body)
    header = next(k for k in good if k.lower() != "content-type")
    forged = {
        "wrong_secret": signed(provider, body, "the-wrong-secret"),
        "modified_body": good,  # signed for `body`, sent with a changed body
        "missing_header": {},
    }
    for name, headers in forged.items():
        sent = body.replace(b"1", b"2", 1) if name == "modified_body" else body
        response = post(client, provider, sent, {k: v for k, v in headers.items() if k == header})
        assert response.status_code == 401, name
        assert b"signature" in response.content
    assert WebhookEvent.objects.count() == 0
    reasons = _rejections(provider)
    assert reasons["missing_signature"] == 1
    assert reasons["bad_signature"] == 2
    assert "payload" not in [f.name for f in RejectedDelivery._meta.fields]


@pytest.mark.django_db
@pytest.mark.parametrize("provider", ["stripe", "retell"])
def test_it_refuses_a_stale_timestamp(client, provider):
    if provider == "stripe":
        body = stripe_body("invoice.paid", {"id": "in_1", "object": "invoice", "customer": "cus_x"})
        headers = signed("stripe", body, timestamp=int(time.time()) - 301)
    else:
        body = retell_body({"event": "call_ended", "call": retell_call()})
        headers = signed("retell", body, timestamp_ms=int(time.time() * 1000) - 301_000)
    response = post(client, provider, body, headers)
    assert response.status_code == 401
    assert WebhookEvent.objects.count() == 0
    assert _rejections(provider) == {"stale_timestamp": 1}


@pytest.mark.django_db
def test_it_accepts_a_retell_signature_from_the_near_future_within_five_minutes(client, alice):
    body = retell_body({"event": "call_ended", "call": retell_call()})
    response = post(
        client, "retell", body, signed("retell", body, timestamp_ms=int(time.time() * 1000) + 240_000)
    )
    assert response.status_code == 202


@pytest.mark.django_db
def test_it_refuses_calcom_no_secret_provided_even_without_a_platform_secret(client, settings):
    body = calcom_body("BOOKING_CREATED", {"uid": "bk_1"})
    response = post(client, "calcom", body, signed("calcom", body, ""))  # the sandbox's no-secret header
    assert response.status_code == 401
    settings.CALCOM_WEBHOOK_SECRET = None
    response = post(client, "calcom", body, signed("calcom", body, CALCOM_SECRET))
    assert response.status_code == 401, "no configured secret must never mean 'accept'"
    assert _rejections("calcom") == {"no_secret_provided": 1, "no_secret": 1}
    assert WebhookEvent.objects.count() == 0


@pytest.mark.django_db
def test_it_refuses_get_requests(client):
    assert client.get("/webhooks/stripe").status_code == 405


@pytest.mark.django_db
def test_it_processes_the_same_event_once_and_counts_the_duplicate(
    client, alice, django_capture_on_commit_callbacks
):
    body = retell_body({"event": "call_started", "call": retell_call()})
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        first = post(client, "retell", body, signed("retell", body))
        second = post(client, "retell", body, signed("retell", body))  # Retell's retry: new signature
    assert (first.status_code, second.status_code) == (202, 200)
    assert json.loads(second.content) == {"status": "duplicate"}
    assert len(callbacks) == 1, "only the first delivery enqueues processing"
    event = WebhookEvent.objects.get()
    assert event.duplicate_count == 1 and event.attempts == 1
    assert Call.objects.filter(retell_call_id="call_abc").count() == 1


@pytest.mark.django_db
def test_it_verifies_with_the_tenants_own_secret_and_binds_the_event_to_that_tenant(
    client, alice, bob, django_capture_on_commit_callbacks
):
    alice.retell_api_key = "key_alice_own"
    alice.save()
    body = retell_body({"event": "call_started", "call": retell_call(call_id="call_own")})
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, "retell", body, signed("retell", body, "key_alice_own"))
    assert response.status_code == 202
    event = WebhookEvent.objects.get()
    assert (event.verified_by, event.tenant) == ("tenant", alice)
    assert Call.objects.get(retell_call_id="call_own").company == alice


@pytest.mark.django_db
def test_it_never_lets_one_tenants_secret_sign_for_another_tenant(client, alice, bob):
    """Bob knows his own key; a delivery naming Alice's number signed with it is refused."""
    bob.retell_api_key = "key_bob_own"
    bob.save()
    body = retell_body({"event": "call_started", "call": retell_call(to="+4930111111")})
    response = post(client, "retell", body, signed("retell", body, "key_bob_own"))
    assert response.status_code == 401
    assert WebhookEvent.objects.count() == 0 and Call.objects.filter(retell_call_id="call_abc").count() == 0


@pytest.mark.django_db
def test_it_keeps_a_tenant_signed_stripe_event_away_from_platform_billing(
    client, alice, bob, django_capture_on_commit_callbacks
):
    """Alice's own Stripe account cannot move Bob's (or her own) platform billing status."""
    alice.stripe_webhook_secret = "whsec_alice_own"
    alice.stripe_customer_id = "cus_alice_platform"
    alice.save()
    bob.stripe_customer_id = "cus_bob_platform"
    bob.billing_status = Company.BillingStatus.ACTIVE
    bob.save()
    sub = {"id": "sub_1", "object": "subscription", "customer": "cus_alice_platform", "status": "canceled"}
    body = stripe_body("customer.subscription.deleted", sub)
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, "stripe", body, signed("stripe", body, "whsec_alice_own"))
    assert response.status_code == 202
    event = WebhookEvent.objects.get()
    assert event.verified_by == "tenant" and event.status == "processed"
    alice.refresh_from_db()
    assert alice.billing_status == Company.BillingStatus.TRIALING
    # ... and an invoice signed by Alice's secret that names Bob's customer lands with Alice only.
    inv = {
        "id": "in_cross",
        "object": "invoice",
        "customer": "cus_bob_platform",
        "status": "paid",
        "total": 100,
    }
    body = stripe_body("invoice.paid", inv)
    assert post(client, "stripe", body, signed("stripe", body, "whsec_alice_own")).status_code == 401
    assert not Invoice.objects.filter(stripe_invoice_id="in_cross").exists()


@pytest.mark.django_db
def test_it_acknowledges_even_when_the_broker_is_down(
    client, alice, settings, django_capture_on_commit_callbacks
):
    """Persist first: a broker outage leaves the event stored as received for the sweeper."""
    from askpro.celery import app

    old = (app.conf.task_always_eager, app.conf.broker_url)
    app.conf.task_always_eager = False
    app.conf.broker_url = "redis://127.0.0.1:1/0"  # nothing listens there
    app.conf.broker_connection_retry = False
    app.conf.broker_connection_max_retries = 0
    try:
        body = retell_body({"event": "call_started", "call": retell_call()})
        with django_capture_on_commit_callbacks(execute=True):
            response = post(client, "retell", body, signed("retell", body))
    finally:
        app.conf.task_always_eager, app.conf.broker_url = old
        forget_broker_connections()
    assert response.status_code == 202
    assert WebhookEvent.objects.get().status == "received"


@pytest.mark.django_db
def test_it_accepts_a_tenants_own_stripe_account_at_its_own_url(
    client, alice, bob, django_capture_on_commit_callbacks
):
    """Alice's own Stripe account bills her customers (ids we do not know): her webhook URL
    names her (?tenant=alice-salon), which only selects the secret to try."""
    alice.stripe_webhook_secret = "whsec_alice_own"
    alice.save()
    invoice = {
        "id": "in_own",
        "object": "invoice",
        "customer": "cus_of_alices_client",
        "status": "open",
        "total": 5000,
    }
    body = stripe_body("invoice.finalized", invoice)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/webhooks/stripe?tenant=alice-salon",
            data=body,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=signed("stripe", body, "whsec_alice_own")["Stripe-Signature"],
        )
    assert response.status_code == 202
    event = WebhookEvent.objects.get()
    assert (event.verified_by, event.tenant, event.status) == ("tenant", alice, "processed")
    assert Invoice.objects.get(stripe_invoice_id="in_own").company == alice
    # Naming Bob in the URL does not make Alice's secret valid for Bob.
    other = stripe_body("invoice.finalized", {**invoice, "id": "in_other"})
    response = client.post(
        "/webhooks/stripe?tenant=bob-practice",
        data=other,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signed("stripe", other, "whsec_alice_own")["Stripe-Signature"],
    )
    assert response.status_code == 401
