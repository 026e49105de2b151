"""`/health/`, `/health/live`, `/health/ready` (docs/health.md): anonymous callers get the stored
aggregate and start nothing; staff and key holders get every result from a coalesced live run;
an open breaker is reported without asking the upstream."""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.test import override_settings
from django.utils import timezone

from mcp_core import breaker, shared_state
from mcp_core.contracts import SYSTEM_PRINCIPAL
from mcp_core.health import UNKNOWN, reset_readiness_for_tests, run_checks_coalesced
from mcp_core.models import HealthRun, ServiceHealth
from mcp_core.pipeline import call_operation, reset_guards_for_tests
from mcp_core.registry import reset_registry_for_tests
from tests.mcp.health_servers import PingSandbox, paths

pytestmark = pytest.mark.django_db

HEALTH_CHECKS = "^/health$"
GUARDS = ["mcp_core.ratelimit.RateLimitGuard", "mcp_core.breaker.BreakerGuard"]
OPENS_AFTER_TWO_FAILURES = {
    "default": {"minimum_calls": 2, "failure_rate_threshold": 50.0, "window": 30.0, "open_duration": 60.0}
}


@pytest.fixture
def upstream():
    server = PingSandbox().start()
    yield server
    server.stop()


@pytest.fixture
def pinged(upstream, fresh_registry):
    """The registry: Fine, Unconfigured and Pinged (whose checks reach `upstream`)."""
    breaker.reset_local_state_for_tests()
    reset_guards_for_tests()
    with override_settings(
        MCP_SERVERS=paths("Fine", "Unconfigured", "Pinged"),
        PINGED_UPSTREAM_URL=upstream.url,
        MCP_PIPELINE_GUARDS=GUARDS,
        MCP_BREAKERS=OPENS_AFTER_TWO_FAILURES,
    ):
        reset_registry_for_tests()
        yield upstream
    reset_guards_for_tests()
    breaker.reset_local_state_for_tests()


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_user("watcher", password="pw-watcher-1", is_staff=True)
    client.force_login(user)
    return client


def _store_run(status: str = "healthy") -> HealthRun:
    return HealthRun.objects.create(
        status=status,
        trigger=HealthRun.Trigger.SCHEDULE,
        services={"fine": {"status": "healthy", "latency_ms": 1.0, "detail": "ok"}},
        platform={},
    )


# --- anonymous callers -------------------------------------------------------------------------


def test_it_answers_anonymous_callers_from_the_stored_run_without_checking_a_hung_upstream(
    client, pinged, django_assert_num_queries
):
    pinged.inject_fault(delay=30, path=HEALTH_CHECKS)  # a check would hang for its whole timeout
    stored = _store_run()
    for _ in range(20):
        with django_assert_num_queries(1):  # the newest run's status and time, nothing else
            response = client.get("/health/")
        assert response.status_code == 200
    assert response.json() == {
        "status": "healthy",
        "checked_at": stored.checked_at.isoformat(),
        "age_seconds": response.json()["age_seconds"],
    }
    assert response["Last-Modified"]
    assert "no-store" in response["Cache-Control"] or "no-cache" in response["Cache-Control"]
    assert pinged.requests_to(HEALTH_CHECKS) == []
    assert HealthRun.objects.count() == 1  # no run was started


def test_it_tells_anonymous_callers_unknown_before_any_run_and_503_when_failing(client, pinged):
    response = client.get("/health/")
    assert response.status_code == 503
    assert response.json() == {"status": UNKNOWN, "checked_at": None, "age_seconds": None}
    _store_run("degraded")
    response = client.get("/health/")
    assert response.status_code == 503
    assert response.json()["status"] == "degraded"
    assert pinged.requests_to(HEALTH_CHECKS) == []


def test_it_names_no_service_to_anonymous_callers(client, pinged):
    run_checks_coalesced(trigger=HealthRun.Trigger.SCHEDULE)
    body = client.get("/health/", headers={"Accept": "text/html"}).content.decode()
    assert set(json.loads(body)) == {"status", "checked_at", "age_seconds"}
    for name in ("fine", "unconfigured", "pinged", "database", "cache"):
        assert name not in body


# --- staff and API key holders -----------------------------------------------------------------


def test_it_gives_staff_every_result_from_a_live_run(staff_client, pinged):
    response = staff_client.get("/health/?format=json")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "Database(alias='default')": "OK",
        "Cache(alias='default')": "OK",
        "MCPServerHealth(service='fine')": "OK",
        "MCPServerHealth(service='pinged')": "OK",
        "MCPServerHealth(service='unconfigured')": "OK",  # not_configured is not a failure
    }
    assert response["X-Health-Source"] == "live"
    assert len(pinged.requests_to(HEALTH_CHECKS)) == 1
    run = HealthRun.objects.get()
    assert run.trigger == "health_page" and run.status == "healthy"
    assert set(run.services) == {"fine", "pinged", "unconfigured"}
    assert set(run.platform) == {"database", "cache"}
    assert dict(ServiceHealth.objects.values_list("service", "status")) == {
        "fine": "healthy",
        "pinged": "healthy",
        "unconfigured": "not_configured",
    }


def test_it_gives_api_key_holders_every_result_and_refuses_a_bad_key(client, pinged, alice_key):
    response = client.get("/health/?format=json", headers={"Authorization": f"Bearer {alice_key}"})
    assert response.status_code == 200
    assert "MCPServerHealth(service='pinged')" in response.json()
    response = client.get("/health/", headers={"Authorization": "Bearer ak_not_a_real_key"})
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "pinged" not in response.content.decode()


def test_it_does_not_give_details_to_a_signed_in_non_staff_user(client, pinged):
    user = get_user_model().objects.create_user("customer", password="pw-customer-1")
    client.force_login(user)
    response = client.get("/health/?format=json")
    assert set(response.json()) == {"status", "checked_at", "age_seconds"}
    assert pinged.requests_to(HEALTH_CHECKS) == []


def test_it_answers_503_with_the_reason_when_a_server_is_unhealthy_or_degraded(staff_client, fresh_registry):
    with override_settings(MCP_SERVERS=paths("Fine", "Broken", "Slowish")):
        response = staff_client.get("/health/", headers={"Accept": "application/json"})
    assert response.status_code == 503
    body = response.json()
    assert body["MCPServerHealth(service='fine')"] == "OK"
    assert body["MCPServerHealth(service='broken')"].startswith("Unavailable: check failed")
    assert body["MCPServerHealth(service='slowish')"] == "Warning: p99 above 2s"


def test_it_renders_the_html_page_for_staff(staff_client, fresh_registry):
    with override_settings(MCP_SERVERS=paths("Fine")):
        response = staff_client.get("/health/", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert b"MCPServerHealth" in response.content and b"fine" in response.content


# --- coalescing --------------------------------------------------------------------------------


def test_it_reuses_a_run_within_the_window_and_runs_again_after_it(staff_client, pinged):
    with override_settings(MCP_HEALTH_REUSE_SECONDS=60):
        assert staff_client.get("/health/?format=json")["X-Health-Source"] == "live"
        assert staff_client.get("/health/?format=json")["X-Health-Source"] == "stored"
        assert len(pinged.requests_to(HEALTH_CHECKS)) == 1
    with override_settings(MCP_HEALTH_REUSE_SECONDS=0):
        assert staff_client.get("/health/?format=json")["X-Health-Source"] == "live"
    assert len(pinged.requests_to(HEALTH_CHECKS)) == 2
    assert HealthRun.objects.count() == 2


def test_it_does_not_reuse_a_run_of_another_set_of_servers(pinged, fresh_registry):
    first = run_checks_coalesced(trigger=HealthRun.Trigger.API)
    with override_settings(MCP_SERVERS=paths("Fine")):
        reset_registry_for_tests()
        second = run_checks_coalesced(trigger=HealthRun.Trigger.API)
    assert (first.source, second.source) == ("live", "live")
    assert set(second.services) == {"fine"}


@pytest.mark.django_db(transaction=True)
def test_it_runs_the_checks_once_for_concurrent_callers(pinged):
    pinged.inject_fault(delay=1.0, path=HEALTH_CHECKS)  # a slow upstream keeps the run open
    barrier = threading.Barrier(4)
    snapshots = []

    def ask():
        barrier.wait()
        try:
            snapshots.append(run_checks_coalesced(trigger=HealthRun.Trigger.API))
        finally:
            connection.close()

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(pinged.requests_to(HEALTH_CHECKS)) == 1
    assert sorted(s.source for s in snapshots) == ["live", "stored", "stored", "stored"]
    # Those who came while the run was under way got the stored state (none yet) and were told;
    # one held up past the run (a loaded machine) got that run, reused.
    live = next(s for s in snapshots if s.source == "live")
    for other in (s for s in snapshots if s.source == "stored"):
        assert (other.run_in_progress and other.status == UNKNOWN) or other.checked_at == live.checked_at
    assert HealthRun.objects.count() == 1


# --- circuit breakers --------------------------------------------------------------------------


def _open_the_breaker(upstream) -> None:
    upstream.inject_fault(status=503, path="^/items$")
    for _ in range(2):
        response = call_operation("pinged", "list_items", {}, principal=SYSTEM_PRINCIPAL)
        assert response.error["code"] == "upstream_error", response.error
    upstream.clear_faults()
    assert (
        call_operation("pinged", "list_items", {}, principal=SYSTEM_PRINCIPAL).error["code"] == "circuit_open"
    )


@pytest.mark.parametrize("backend", ["redis", "local"])
def test_it_reports_an_open_breaker_without_calling_the_upstream(pinged, backend, settings):
    if backend == "local":
        settings.CACHES = {
            **settings.CACHES,
            "local": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        }
        settings.MCP_RESILIENCE_CACHE = "local"
    assert shared_state.uses_redis() == (backend == "redis")
    _open_the_breaker(pinged)
    snapshot = run_checks_coalesced(trigger=HealthRun.Trigger.API)
    result = snapshot.services["pinged"]
    assert result.status == "unhealthy"
    assert result.detail.startswith("circuit open")
    assert snapshot.services["fine"].status == "healthy"
    assert snapshot.status == "unhealthy"
    assert pinged.requests_to(HEALTH_CHECKS) == []  # the upstream never heard of the check
    breaker._backend().reset("pinged")


def test_it_checks_the_upstream_again_once_the_breaker_would_let_a_trial_through(pinged):
    with override_settings(
        MCP_BREAKERS={"default": {**OPENS_AFTER_TWO_FAILURES["default"], "open_duration": 0.2}}
    ):
        _open_the_breaker(pinged)
        time.sleep(0.3)
        snapshot = run_checks_coalesced(trigger=HealthRun.Trigger.API)
    assert snapshot.services["pinged"].status == "healthy"
    assert len(pinged.requests_to(HEALTH_CHECKS)) == 1
    breaker._backend().reset("pinged")


# --- liveness and readiness --------------------------------------------------------------------


def test_it_answers_liveness_without_touching_the_database(client, pinged, django_assert_num_queries):
    pinged.inject_fault(delay=30, path=HEALTH_CHECKS)
    for path in ("/health/live", "/health/live/"):
        with django_assert_num_queries(0):
            response = client.get(path)
        assert response.status_code == 200
        assert response.json() == {"status": "alive"}
    assert client.post("/health/live").status_code == 405
    assert pinged.requests_to(HEALTH_CHECKS) == []


def test_it_is_ready_when_the_database_answers_and_every_migration_is_applied(client):
    reset_readiness_for_tests()
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_it_is_not_ready_while_a_migration_is_missing(client):
    reset_readiness_for_tests()
    (app, name), *_ = MigrationLoader(connection).graph.leaf_nodes("mcp_core")
    MigrationRecorder(connection).record_unapplied(app, name)  # rolled back with the test
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json() == {"status": "not_ready", "problems": ["1 migration(s) not applied"]}
    reset_readiness_for_tests()


def test_it_reads_the_migration_plan_once_it_is_complete(client, django_assert_max_num_queries):
    reset_readiness_for_tests()
    assert client.get("/health/ready").status_code == 200
    with django_assert_max_num_queries(1):  # SELECT 1 only; the plan is remembered
        assert client.get("/health/ready").status_code == 200


def test_it_stores_a_run_even_when_every_server_is_fine_and_says_when(pinged):
    before = timezone.now()
    snapshot = run_checks_coalesced(trigger=HealthRun.Trigger.COMMAND)
    assert snapshot.source == "live" and snapshot.checked_at >= before
    report = snapshot.report()
    assert report["services"]["pinged"]["status"] == "healthy"
    assert report["platform"]["database"]["status"] == "healthy"
