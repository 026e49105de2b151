"""Deferred messages sent by a real Celery worker (Redis broker), as beat runs the task."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from mcp_servers.messaging.models import Message
from mcp_servers.messaging.tasks import send_deferred_messages
from tests.celery_worker import celery_worker_factory, wait_for  # noqa: F401

from .conftest import CUSTOMER

pytestmark = pytest.mark.slow


def test_it_sends_due_deferred_messages_in_a_worker_and_leaves_the_others(celery_worker_factory, world):  # noqa: F811
    celery_worker_factory(TWILIO_API_BASE=world.sandbox.url, MESSAGING_PUBLIC_URL="").start()
    due = Message.objects.create(company=world.alice, channel="sms", direction="outbound", customer_number=CUSTOMER,
                                 body="Guten Morgen", status="deferred", status_rank=0,
                                 send_after=timezone.now() - dt.timedelta(seconds=5))  # fmt: skip
    later = Message.objects.create(company=world.bob, channel="sms", direction="outbound", customer_number=CUSTOMER,
                                   body="Später", status="deferred", status_rank=0,
                                   send_after=timezone.now() + dt.timedelta(hours=1))  # fmt: skip
    send_deferred_messages.delay()
    sent = wait_for(
        lambda: Message.objects.filter(pk=due.pk, status="queued").exclude(twilio_sid=None).first()
    )
    assert world.sandbox.message(sent.twilio_sid)["body"] == "Guten Morgen"
    assert world.sandbox.message(sent.twilio_sid)["account_sid"] == world.alice_account.account_sid
    later.refresh_from_db()
    assert later.status == "deferred" and later.twilio_sid is None
    # A second run finds nothing due: the message is sent once.
    send_deferred_messages.delay()
    wait_for(lambda: len(world.sandbox.requests_to(r"/Messages\.json$")) >= 1)
    assert len(world.sandbox.requests_to(r"/Messages\.json$")) == 1


def test_it_is_in_the_beat_schedule():
    from dashboard.schedule import SCHEDULE

    assert any(p.task == "messaging.send_deferred" and p.minute == "*" for p in SCHEDULE)


def test_it_applies_status_callbacks_from_the_queue_in_a_worker(celery_worker_factory, world, client):  # noqa: F811
    """Verify, persist and acknowledge here; the worker applies the callback and fetches the price."""
    from urllib.parse import urlsplit

    from mcp_servers.messaging.sandbox import signed_request
    from mcp_servers.webhooks.models import WebhookEvent

    celery_worker_factory(
        TWILIO_API_BASE=world.sandbox.url, MESSAGING_PUBLIC_URL="https://askpro.example.com"
    ).start()
    message = world.call("send_sms", {"to": CUSTOMER, "body": "Hallo"}).data["message"]

    def sink(url, headers, body):
        parts = urlsplit(url)
        return client.post(f"{parts.path}?{parts.query}", data=body, content_type="application/x-www-form-urlencoded",
                           HTTP_X_TWILIO_SIGNATURE=headers["X-Twilio-Signature"])  # fmt: skip

    world.sandbox.sink = sink
    world.sandbox.advance(message["twilio_sid"], "delivered")
    # Twilio's "sent" callback arriving late, after "delivered": it must not win.
    url = "https://askpro.example.com/webhooks/twilio?tenant=alice-salon"
    params = world.sandbox.callback_params(message["twilio_sid"], "sent")
    headers, body = signed_request(url, params, world.alice_account.auth_token)
    assert sink(url, headers, body).status_code == 202
    wait_for(lambda: WebhookEvent.objects.filter(provider="twilio", status="processed").count() == 2)
    row = Message.objects.get(pk=message["id"])
    notes = list(WebhookEvent.objects.filter(provider="twilio").values_list("type", "result"))
    assert row.status == "delivered" and row.price is not None, notes
