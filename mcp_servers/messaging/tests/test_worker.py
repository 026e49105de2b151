"""Deferred messages sent by a real Celery worker (Redis broker), as beat runs the task."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from mcp_servers.messaging.models import Message
from mcp_servers.messaging.tasks import send_deferred_messages
from mcp_servers.queue.tests.celery_worker import celery_worker_factory, wait_for  # noqa: F401

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
