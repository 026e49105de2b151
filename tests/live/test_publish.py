"""The publishers of live events, against the real Redis: a breaker transition, a changed health
status, an error spike counted across calls, a new recommendation; each numbered and kept in the
backlog; and publishing never failing its caller."""

from __future__ import annotations

import json
import time
from datetime import timedelta as td

import pytest
from django.test import override_settings
from django.utils import timezone

from dashboard.engine import ImprovementEngine
from dashboard.engine.analyzers.metrics import SlowOperations
from dashboard.tests.factories import record_calls
from mcp_core import live, shared_state
from mcp_core.health import run_checks_coalesced
from tests.resilience.conftest import dummy, principal, sandbox, tenant  # noqa: F401 - fixtures
from tests.resilience.test_breaker import open_the_breaker

pytestmark = pytest.mark.django_db


@pytest.fixture
def events():
    """Everything published on this run's channel while the test runs, in order."""
    pubsub = shared_state.redis_client().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(live.channel())
    received: list[dict] = []

    def read(expected: int = 1, timeout: float = 5.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(received) < expected and time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.1)
            if message and message["type"] == "message":
                received.append(json.loads(message["data"]))
        # Anything more that is already there (a test asserting "exactly one" sees extras).
        while message := pubsub.get_message(timeout=0.2):
            if message["type"] == "message":
                received.append(json.loads(message["data"]))
        return received

    yield read
    pubsub.close()


def test_it_publishes_each_breaker_transition_of_a_real_upstream_failure(dummy, principal, events):  # noqa: F811
    open_the_breaker(dummy, principal)
    [event] = [e for e in events(1) if e["type"] == "breaker"]
    assert (event["service"], event["from"], event["to"]) == ("dummy", "closed", "open")
    assert "failed" in event["reason"] and event["id"] == live.current_id()
    # Kept in the backlog for a browser that reconnects.
    backlog = shared_state.redis_client().lrange(live.keys()["backlog"], 0, 0)
    assert json.loads(backlog[0])["id"] == event["id"]


@override_settings(LIVE_ERROR_SPIKE_THRESHOLD=3, LIVE_ERROR_SPIKE_WINDOW_SECONDS=60)
def test_it_raises_one_error_spike_per_window_from_the_pipelines_upstream_failures(dummy, principal, events):  # noqa: F811
    # Two failures are below the threshold, the third raises the spike, later ones do not repeat it.
    from tests.resilience.test_breaker import call

    dummy.inject_fault(status=500, path="/items/")
    codes = [call(principal).error["code"] for _ in range(2)]
    assert codes == ["upstream_error"] * 2
    assert [e for e in events(1, timeout=0.5) if e["type"] == "error_spike"] == []
    for _ in range(2):
        call(principal)
    spikes = [e for e in events(1) if e["type"] == "error_spike"]
    assert len(spikes) == 1
    assert spikes[0]["service"] == "dummy" and spikes[0]["failures"] == 3
    assert live.service_failed("dummy") == 0  # the 5th failure of the window: no second spike


def test_it_publishes_a_health_run_only_when_a_status_changed(settings, events):
    settings.MCP_HEALTH_REUSE_SECONDS = 0
    first = run_checks_coalesced(trigger="test")
    [event] = [e for e in events(1) if e["type"] == "health"]
    assert event["status"] == first.status and event["previous_status"] is None
    assert set(event["changed"]) == set(first.services)
    assert all("detail" not in change for change in event["changed"].values())
    run_checks_coalesced(trigger="test")  # the same statuses again: nothing to tell
    assert [e for e in events(2, timeout=0.5) if e["type"] == "health"] == [event]
    assert live.health_changed({"calcom": "healthy"}, {"calcom": "unhealthy"}, "unhealthy", "healthy") > 0
    changed = [e for e in events(2) if e["type"] == "health"][-1]
    assert changed["changed"] == {"calcom": {"from": "healthy", "to": "unhealthy"}}


def test_it_publishes_each_new_recommendation_of_the_engine_once(events):
    record_calls(service="database", operation="search", minute=timezone.now(), durations_ms=[3000] * 25)
    record_calls(
        service="database",
        operation="get_schema",
        minute=timezone.now() - td(minutes=1),
        durations_ms=[2500] * 25,
    )
    ImprovementEngine([SlowOperations()]).run(trigger="test")
    recs = [e for e in events(2) if e["type"] == "recommendation"]
    assert sorted(e["title"].split(" ")[0] for e in recs) == ["database.get_schema", "database.search"]
    assert all(e["analyzer"] == "slow_operations" and e["recommendation"] > 0 for e in recs)
    ImprovementEngine([SlowOperations()]).run(trigger="test")  # the same findings: updated, not new
    assert len([e for e in events(3, timeout=0.5) if e["type"] == "recommendation"]) == 2


def test_it_never_names_a_tenant_in_a_recommendation_event(events, alice):
    from dashboard.engine.base import Analyzer, Finding
    from dashboard.engine.engine import TENANT_FINDING_TITLE

    class AboutAlice(Analyzer):
        name = "about_alice"
        defaults = {}

        def analyze(self, ctx):
            return [Finding("a", "high", f"{alice.name} misses calls", {}, "-", tenant_ids=(alice.pk,))]

    ImprovementEngine([AboutAlice()]).run(trigger="test")
    recs = [e for e in events(2) if e["type"] == "recommendation"]
    # Every subscriber gets the event, whatever their tenants: the title stays on the page.
    assert [e["title"] for e in recs] == [TENANT_FINDING_TITLE]
    assert alice.name not in json.dumps(recs)


def test_it_never_fails_the_caller_and_sends_nothing_without_a_working_redis():
    dead = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        }
    }
    shared_state.health.reset()
    live.reset_for_tests()
    try:
        with override_settings(CACHES=dead):
            assert live.breaker_changed("calcom", "closed", "open", "test") == 0
            assert shared_state.health.paused()  # the next ones cost nothing until the pause ends
            started = time.monotonic()
            assert live.service_failed("calcom") == 0
            assert time.monotonic() - started < 0.1
            assert live.current_id() == 0
        with override_settings(
            CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
        ):
            shared_state.health.reset()
            assert not live.enabled()
            assert live.publish("breaker", service="calcom") == 0
    finally:
        shared_state.health.reset()
        live.reset_for_tests()


def test_it_refuses_to_send_an_event_larger_than_its_bound(events):
    assert live.publish("recommendation", title="x" * (live.MAX_EVENT_BYTES + 1)) == 0
    assert live.recommendation_created(1, "a", "low", "y" * 5000) > 0  # titles are cut to fit
    [event] = events(1)
    assert len(event["title"]) == 300
