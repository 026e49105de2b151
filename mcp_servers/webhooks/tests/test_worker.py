"""The processing path on a real Celery worker (Redis broker), including a worker killed in
the middle of an event: nothing is lost."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client

from askpro.models import Call
from mcp_servers.webhooks.models import WebhookEvent
from tests.celery_worker import wait_for

from .conftest import post, retell_body, retell_call, signed
from .flaky_handlers import counter_redis

pytestmark = pytest.mark.slow
SLOW = "mcp_servers.webhooks.tests.flaky_handlers.slow_on_first_attempt"
FLAKY = "mcp_servers.webhooks.tests.flaky_handlers.fails_twice_then_succeeds"


def _deliver(payload):
    body = retell_body(payload)
    response = post(Client(), "retell", body, signed("retell", body))
    assert response.status_code == 202, response.content
    return WebhookEvent.objects.get(idempotency_key=f"{payload['event']}:{payload['call']['call_id']}")


@pytest.mark.django_db(transaction=True)
def test_it_processes_acknowledged_events_in_a_worker_and_retries_with_backoff(celery_worker_factory, alice):
    celery_worker_factory(handlers={"retell": FLAKY}).start()
    key = f"flaky-{uuid.uuid4().hex}"
    event = _deliver({"event": "call_started", "call": retell_call(call_id="call_w1"), "test_key": key})
    done = wait_for(lambda: WebhookEvent.objects.filter(pk=event.pk, status="processed").first(), timeout=30)
    assert done.attempts == 3 and done.tenant == alice
    assert Call.objects.get(retell_call_id="call_w1").status == "ongoing"


@pytest.mark.django_db(transaction=True)
def test_it_loses_nothing_when_the_worker_dies_mid_event(celery_worker_factory, alice):
    """SIGKILL the worker while the handler runs: the message was not acknowledged (acks_late),
    the broker redelivers it after the visibility timeout, and the restarted worker takes the
    event over once the dead worker's lease has expired. It is applied exactly once."""
    r = counter_redis()  # the Redis the handlers count in (REDIS_URL), not always db 0
    key = f"kill-{uuid.uuid4().hex}"
    first = celery_worker_factory(handlers={"retell": SLOW}).start()
    event = _deliver(
        {"event": "call_started", "call": retell_call(call_id="call_kill"), "test_key": key, "sleep": 60}
    )
    wait_for(lambda: r.get(f"{key}:started:1"), timeout=20)
    assert WebhookEvent.objects.get(pk=event.pk).status == "processing"
    first.kill()
    assert not Call.objects.filter(retell_call_id="call_kill").exists()

    celery_worker_factory(handlers={"retell": SLOW}).start()
    done = wait_for(lambda: WebhookEvent.objects.filter(pk=event.pk, status="processed").first(), timeout=90)
    assert done.attempts == 2
    assert int(r.get(f"{key}:completed")) == 1, "the killed attempt never completed; the second did, once"
    assert Call.objects.filter(retell_call_id="call_kill").count() == 1
    r.delete(f"{key}:started:1", f"{key}:started:2", f"{key}:completed")
