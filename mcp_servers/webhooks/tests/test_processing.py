"""Processing: retries with backoff, the dead letter and replay, claims and leases, concurrent
duplicates, and the sweeper that finds events whose message was lost."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta as td

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from askpro.models import Appointment, Call
from mcp_core.api_keys import api_key_authenticate
from mcp_core.pipeline import call_operation
from mcp_servers.webhooks.models import WebhookEvent
from mcp_servers.webhooks.services import retry_delay, webhook_process, webhook_sweep

from .conftest import calcom_body, post, retell_body, retell_call, signed

FLAKY = "mcp_servers.webhooks.tests.flaky_handlers.fails_twice_then_succeeds"


@pytest.mark.django_db
def test_it_retries_a_handler_that_fails_twice_then_succeeds(
    client, alice, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_HANDLERS = {"retell": FLAKY}
    key = f"flaky-{uuid.uuid4().hex}"
    body = retell_body({"event": "call_started", "call": retell_call(), "test_key": key})
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, "retell", body, signed("retell", body)).status_code == 202
    event = WebhookEvent.objects.get()
    assert event.status == "processed"
    assert event.attempts == 3
    assert event.last_error == ""
    assert Call.objects.filter(retell_call_id="call_abc").count() == 1


def test_it_backs_off_exponentially_up_to_the_cap(settings):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 10
    settings.WEBHOOK_RETRY_MAX_SECONDS = 100
    delays = [retry_delay(n) for n in (1, 2, 3, 4, 5)]
    assert 9 <= delays[0] <= 11 and 18 <= delays[1] <= 22 and 36 <= delays[2] <= 44
    assert 72 <= delays[3] <= 88 and 90 <= delays[4] <= 110


@pytest.mark.django_db
def test_it_dead_letters_a_poison_event_and_processes_it_after_a_fix_and_replay(
    client, alice, platform_key, settings, django_capture_on_commit_callbacks
):
    """A booking for an event type no branch or service maps: retried, dead-lettered; once
    the mapping exists, replaying it creates the appointment."""
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    payload = {
        "uid": "bk_poison",
        "eventTypeId": 777,
        "startTime": "2026-12-01T09:00:00Z",
        "endTime": "2026-12-01T09:30:00Z",
        "status": "ACCEPTED",
        "attendees": [{"name": "Pat", "email": "pat@example.com", "timeZone": "Europe/Berlin"}],
    }
    body = calcom_body("BOOKING_CREATED", payload)
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, "calcom", body, signed("calcom", body)).status_code == 202
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts, event.tenant) == ("failed", 3, None)
    assert "777" in event.last_error and "not mapped" in event.last_error
    principal = api_key_authenticate(platform_key)
    dead = call_operation("webhooks", "list_events", {"status": "failed"}, principal=principal)
    assert [e["id"] for e in dead.data["events"]] == [event.pk]

    branch = alice.branches.get()
    branch.calcom_event_type_id = 777  # the fix
    branch.save()
    with django_capture_on_commit_callbacks(execute=True):
        replay = call_operation("webhooks", "replay_event", {"id": event.pk}, principal=principal)
    assert replay.success, replay.error
    assert replay.data["outcome"] == "queued"
    event.refresh_from_db()
    assert (event.status, event.attempts, event.tenant) == ("processed", 1, alice)
    appointment = Appointment.objects.get(calcom_booking_uid="bk_poison")
    assert appointment.company == alice and appointment.status == "confirmed"
    with django_capture_on_commit_callbacks(execute=True):
        again = call_operation("webhooks", "replay_event", {"id": event.pk}, principal=principal)
    assert again.data["outcome"] == "already_processed"
    assert Appointment.objects.filter(calcom_booking_uid="bk_poison").count() == 1


@pytest.mark.django_db
def test_it_does_not_claim_an_event_another_worker_holds_and_takes_it_over_after_the_lease(alice):
    event = WebhookEvent.objects.create(
        provider="retell",
        event_id="call_abc",
        idempotency_key="call_started:call_abc",
        type="call_started",
        payload={"event": "call_started", "call": retell_call()},
        status="processing",
        attempts=1,
        lease_until=timezone.now() + td(seconds=30),
    )
    busy = webhook_process(event.pk)
    assert busy.state == "busy" and 29 <= busy.retry_in <= 32
    assert not Call.objects.filter(retell_call_id="call_abc").exists()
    WebhookEvent.objects.filter(pk=event.pk).update(lease_until=timezone.now() - td(seconds=1))
    assert webhook_process(event.pk).state == "processed"
    event.refresh_from_db()
    assert event.attempts == 2 and Call.objects.filter(retell_call_id="call_abc").exists()
    assert webhook_process(event.pk).state == "done"


@pytest.mark.django_db
def test_it_sweeps_only_events_whose_message_may_be_lost(alice, django_capture_on_commit_callbacks):
    now = timezone.now()

    def make(key, **fields):
        event = WebhookEvent.objects.create(
            provider="retell",
            event_id=key,
            idempotency_key=f"call_started:{key}",
            type="call_started",
            payload={"event": "call_started", "call": retell_call(call_id=key)},
            **fields,
        )
        WebhookEvent.objects.filter(pk=event.pk).update(received_at=fields.pop("received_at", now))
        return event

    lost = make("call_lost", received_at=now - td(minutes=5))
    fresh = make("call_fresh")
    stalled = make("call_stalled", status="processing", attempts=1, lease_until=now - td(seconds=1))
    held = make("call_held", status="processing", attempts=1, lease_until=now + td(minutes=5))
    assert webhook_sweep(grace_seconds=60) == 2
    statuses = dict(WebhookEvent.objects.values_list("event_id", "status"))
    assert statuses == {
        "call_lost": "processed",
        "call_stalled": "processed",
        "call_fresh": "received",
        "call_held": "processing",
    }
    assert {lost.pk, stalled.pk}.isdisjoint({fresh.pk, held.pk})


@pytest.mark.django_db(transaction=True)
def test_it_processes_concurrent_duplicate_deliveries_once(alice):
    """Eight threads deliver the same event at the same moment (each on its own connection)."""
    body = retell_body({"event": "call_started", "call": retell_call(call_id="call_race")})
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def deliver():
        try:
            barrier.wait()
            statuses.append(post(Client(), "retell", body, signed("retell", body)).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 7 + [202]
    event = WebhookEvent.objects.get()
    assert event.duplicate_count == 7
    assert event.status == "processed" and event.attempts == 1
    assert Call.objects.filter(retell_call_id="call_race").count() == 1


@pytest.mark.django_db(transaction=True)
def test_it_applies_an_event_once_under_concurrent_processing_tasks(alice):
    event = WebhookEvent.objects.create(
        provider="retell",
        event_id="call_twice",
        idempotency_key="call_started:call_twice",
        type="call_started",
        payload={"event": "call_started", "call": retell_call(call_id="call_twice")},
    )
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def run():
        try:
            barrier.wait()
            outcomes.append(webhook_process(event.pk).state)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("processed") == 1
    assert set(outcomes) <= {"processed", "busy", "done"}
    event.refresh_from_db()
    assert event.attempts == 1 and event.status == "processed"


@pytest.mark.django_db
def test_it_reports_what_the_sweep_command_enqueued(alice):
    from io import StringIO

    from django.core.management import call_command

    event = WebhookEvent.objects.create(
        provider="retell",
        event_id="call_cmd",
        idempotency_key="call_started:call_cmd",
        type="call_started",
        payload={"event": "call_started", "call": retell_call(call_id="call_cmd")},
    )
    out = StringIO()
    call_command("webhooks_sweep", "--grace", "0", stdout=out)
    assert out.getvalue().strip() == "enqueued 1 webhook event(s)"
    event.refresh_from_db()
    assert event.status == "processed"
