"""Exactly once with real Celery workers (Redis broker) against the Twilio sandbox: two workers
running two sweeps at once, and a worker killed in the middle of a send."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.utils import timezone

from notifications import services
from notifications.models import Notification, Reminder
from notifications.tasks import sweep_reminders
from tests.celery_worker import celery_worker_factory, wait_for  # noqa: F401

pytestmark = pytest.mark.slow
MESSAGES = r"/Messages\.json$"


def due_reminders(world, count: int) -> list[int]:
    for _ in range(count):
        services.plan_reminders(world.appointment(hours=30).pk)
    Reminder.objects.filter(offset_minutes=120).delete()
    Reminder.objects.update(due_at=timezone.now() - dt.timedelta(seconds=1))
    return list(Reminder.objects.values_list("pk", flat=True))


def test_it_sends_each_reminder_once_with_two_workers_sweeping_at_once(celery_worker_factory, world):  # noqa: F811
    ids = due_reminders(world, 30)
    workers = [
        celery_worker_factory(TWILIO_API_BASE=world.twilio.url, MESSAGING_PUBLIC_URL="", REMINDERS_SEND_CHUNK="5",
                              REMINDERS_SWEEP_BATCH="7").start(wait=False)
        for _ in range(2)
    ]  # fmt: skip
    for worker in workers:
        worker.wait_ready()
    sweep_reminders.delay()
    sweep_reminders.delay()
    wait_for(lambda: Reminder.objects.filter(status="sent").count() == len(ids), timeout=60)
    posts = [r for r in world.twilio.requests_to(MESSAGES) if r.method == "POST"]
    assert len(posts) == len(ids)
    assert Notification.objects.filter(kind="reminder", status="sent").count() == len(ids)
    assert set(Reminder.objects.values_list("attempts", flat=True)) == {1}


def test_it_sends_once_after_a_worker_dies_in_the_middle_of_a_send(celery_worker_factory, world):  # noqa: F811
    [pk] = due_reminders(world, 1)
    env = {
        "TWILIO_API_BASE": world.twilio.url,
        "MESSAGING_PUBLIC_URL": "",
        "REMINDERS_CLAIM_LEASE_SECONDS": "2",
    }
    first = celery_worker_factory(**env).start()
    # Twilio takes its time with this one: the worker is inside the send when it dies.
    world.twilio.inject_fault(delay=2.0, path=MESSAGES, count=1)
    sweep_reminders.delay()
    wait_for(lambda: world.twilio.requests_to(MESSAGES), timeout=30)
    assert Reminder.objects.get(pk=pk).status == "sending"
    first.kill()
    wait_for(lambda: world.twilio.messages, timeout=10)  # Twilio went on and sent it
    celery_worker_factory(**env).start()

    def retried() -> bool:
        if Reminder.objects.get(pk=pk).status == "sent":
            return True
        sweep_reminders.delay()  # as beat would, every minute
        time.sleep(0.5)
        return False

    wait_for(retried, timeout=60)
    reminder = Reminder.objects.get(pk=pk)
    assert reminder.attempts == 2 and reminder.channel == "sms"
    assert len([r for r in world.twilio.requests_to(MESSAGES) if r.method == "POST"]) == 1
    assert len(world.twilio.messages) == 1
