"""Postmark's tracking webhooks through the one ingestion path: the sandbox builds an event for
a message it received and posts it with basic auth; the endpoint verifies the tenant's webhook
secret, stores, acknowledges, and the queue applies it: status by rank, and a hard bounce or a
complaint puts the address on the tenant's suppression list."""

from __future__ import annotations

import json

import pytest

from mcp_core.tenancy import forget_tenant_secrets
from mcp_servers.mail.models import OutboundEmail, Suppression
from mcp_servers.mail.webhooks import sign_webhook
from mcp_servers.webhooks.models import RejectedDelivery, WebhookEvent

pytestmark = pytest.mark.django_db
URL = "/webhooks/postmark?tenant=alice-salon"


@pytest.fixture
def routed(world, client, django_capture_on_commit_callbacks):
    """The sandbox's deliveries reach the endpoint through Django's test client."""
    forget_tenant_secrets()

    def sink(url: str, headers: dict[str, str], body: bytes):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(
                url, data=body, content_type="application/json", HTTP_AUTHORIZATION=headers["Authorization"]
            )

    world.sandbox.sink = sink
    yield world
    forget_tenant_secrets()


def sent(world, to: str = "kunde@example.com"):
    answer = world.call(
        "send_email", {"to": to, "template": "confirmation", "appointment_id": world.appointment.pk}
    )
    assert answer.success, answer.error
    [received] = world.sandbox.received(to)
    return answer.data["email_id"], received


def deliver(world, received, kind: str, *, secret: str | None = None, url: str = URL):
    payload = world.sandbox.tracking_event(received, kind)
    return world.sandbox.deliver(url, payload, secret or world.alice_account.webhook_secret)


def test_it_suppresses_an_address_after_a_hard_bounce_and_never_mails_it_again(routed):
    email_id, received = sent(routed)
    assert deliver(routed, received, "hard_bounce").status_code == 202
    row = OutboundEmail.objects.get(pk=email_id)
    assert row.status == "bounced" and "hard bounce" in row.error_message
    suppression = Suppression.objects.get(company=routed.alice, address="kunde@example.com")
    assert suppression.reason == "hard_bounce" and suppression.email_id == email_id
    event = WebhookEvent.objects.get(provider="postmark")
    assert event.status == "processed" and event.tenant_id == routed.alice.pk and "suppressed" in event.result
    again = routed.call("send_email", {"to": "kunde@example.com", "subject": "s", "text": "t"})
    assert again.error["code"] == "conflict" and again.error["details"]["reason"] == "suppressed"
    assert len(routed.sandbox.received()) == 1
    assert routed.call("get_email_status", {"email_id": email_id}).data["email"]["status"] == "bounced"


def test_it_suppresses_an_address_after_a_spam_complaint(routed):
    email_id, received = sent(routed)
    assert deliver(routed, received, "complaint").status_code == 202
    assert OutboundEmail.objects.get(pk=email_id).status == "complained"
    assert Suppression.objects.get(company=routed.alice).reason == "complaint"
    listed = routed.call("list_suppressions", {}).data["suppressions"]
    assert [(s["address"], s["reason"], s["email_id"]) for s in listed] == [
        ("kunde@example.com", "complaint", email_id)
    ]


def test_it_marks_delivered_and_keeps_bounced_over_a_late_delivery(routed):
    email_id, received = sent(routed)
    deliver(routed, received, "delivery")
    assert OutboundEmail.objects.get(pk=email_id).status == "delivered"
    deliver(routed, received, "hard_bounce")
    deliver(routed, received, "delivery")  # a second delivery event, late
    assert OutboundEmail.objects.get(pk=email_id).status == "bounced"


def test_it_does_not_suppress_after_a_soft_bounce(routed):
    email_id, received = sent(routed)
    deliver(routed, received, "soft_bounce")
    assert OutboundEmail.objects.get(pk=email_id).status == "sent"
    assert not Suppression.objects.exists()
    assert "soft bounce" in WebhookEvent.objects.get(provider="postmark").result


def test_it_takes_a_redelivered_event_once(routed):
    _, received = sent(routed)
    payload = routed.sandbox.tracking_event(received, "complaint")
    secret = routed.alice_account.webhook_secret
    assert routed.sandbox.deliver(URL, payload, secret).status_code == 202
    again = routed.sandbox.deliver(URL, payload, secret)
    assert again.status_code == 200 and again.json() == {"status": "duplicate"}
    assert WebhookEvent.objects.get(provider="postmark").duplicate_count == 1


def test_it_applies_an_event_to_the_named_tenant_only(routed):
    """Bob's secret on Bob's URL cannot touch Alice's email, even naming its id."""
    email_id, received = sent(routed)
    payload = routed.sandbox.tracking_event(received, "hard_bounce")
    answer = routed.sandbox.deliver(
        "/webhooks/postmark?tenant=bob-practice", payload, routed.bob_account.webhook_secret
    )
    assert answer.status_code == 202
    assert OutboundEmail.objects.get(pk=email_id).status == "sent"
    assert not Suppression.objects.filter(company=routed.alice).exists()
    assert Suppression.objects.get().company == routed.bob  # on Bob's own list, for his own mail


@pytest.mark.parametrize(
    ("case", "reason"),
    [("other secret", "bad_signature"), ("other tenant", "bad_signature"), ("no tenant", "no_secret"),
     ("no auth", "missing_signature"), ("bearer", "malformed_signature")],
)  # fmt: skip
def test_it_refuses_deliveries_without_the_tenants_webhook_secret(routed, client, case, reason):
    email_id, received = sent(routed)
    body = json.dumps(routed.sandbox.tracking_event(received, "hard_bounce")).encode()
    secret = (
        routed.bob_account.webhook_secret if case == "other secret" else routed.alice_account.webhook_secret
    )
    path = {"other tenant": "/webhooks/postmark?tenant=bob-practice", "no tenant": "/webhooks/postmark"}.get(
        case, URL
    )
    headers = {"HTTP_AUTHORIZATION": sign_webhook(body, secret)["Authorization"]}
    if case == "no auth":
        headers = {}
    if case == "bearer":
        headers = {"HTTP_AUTHORIZATION": "Bearer abc"}
    answer = client.post(path, data=body, content_type="application/json", **headers)
    assert answer.status_code == 401 and answer.json()["reason"] == reason
    assert not WebhookEvent.objects.filter(provider="postmark").exists()
    assert OutboundEmail.objects.get(pk=email_id).status == "sent" and not Suppression.objects.exists()
    assert RejectedDelivery.objects.get(provider="postmark", reason=reason).count == 1
    assert routed.alice_account.webhook_secret not in answer.content.decode()


def test_it_reads_events_through_anymail_and_ignores_what_it_cannot_read(routed):
    from mcp_servers.mail import services

    email_id, received = sent(routed)
    bad_address = {**routed.sandbox.tracking_event(received, "hard_bounce"), "Type": "BadEmailAddress",
                   "Inactive": False}  # fmt: skip
    assert "address suppressed" in services.handle_tracking_event(routed.alice, bad_address)
    assert Suppression.objects.get().reason == "hard_bounce"
    assert OutboundEmail.objects.get(pk=email_id).status == "bounced"
    garbled = {**routed.sandbox.tracking_event(received, "complaint"), "BouncedAt": 12}
    assert services.handle_tracking_event(routed.alice, garbled) == "ignored: not a Postmark tracking event"
    opened = {"RecordType": "Open", "MessageID": received.message_id, "Recipient": "kunde@example.com"}
    assert services.handle_tracking_event(routed.alice, opened) == "ignored: opened event"
