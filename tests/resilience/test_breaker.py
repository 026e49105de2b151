"""Circuit breakers against a real HTTP upstream that fails, stalls or answers slowly on command."""

from __future__ import annotations

import threading
import time

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connections
from django.test import Client, override_settings

from mcp_core import breaker
from mcp_core.breaker import BreakerConfig, _backend, config_problems
from mcp_core.contracts import MCPRequest
from mcp_core.models import AuditEntry, BreakerTransition
from mcp_core.pipeline import route

from .conftest import FAST_BREAKER, set_plan

pytestmark = pytest.mark.django_db


def call(principal, operation="fetch", **params):
    return route(MCPRequest(service="dummy", operation=operation, params=params, principal=principal))


def transitions() -> list[str]:
    return [
        f"{t.from_state}>{t.to_state}"
        for t in BreakerTransition.objects.filter(service="dummy").order_by("id")
    ]


def open_the_breaker(sandbox, principal) -> None:
    sandbox.inject_fault(status=500, path="/items/")
    for _ in range(FAST_BREAKER["minimum_calls"]):
        response = call(principal)
        assert response.error["code"] == "upstream_error"
    sandbox.clear_faults()


def test_it_opens_after_the_failure_threshold_and_fails_fast_without_the_upstream(dummy, backend, principal):
    sandbox = dummy
    sandbox.inject_fault(status=500, path="/items/")
    codes = [call(principal).error["code"] for _ in range(3)]
    assert codes == ["upstream_error"] * 3  # 3 of 4 minimum calls: still closed
    assert transitions() == []
    call(principal)  # the 4th failure: 100% >= 50% over 4 calls
    assert transitions() == ["closed>open"]
    assert "4 failed" in BreakerTransition.objects.get().reason
    seen = len(sandbox.request_log)
    started = time.perf_counter()
    refused = [call(principal) for _ in range(5)]
    assert all(r.error["code"] == "circuit_open" for r in refused)
    assert all(0 < r.error["details"]["retry_after"] <= FAST_BREAKER["open_duration"] for r in refused)
    assert len(sandbox.request_log) == seen  # no upstream request while open
    assert (time.perf_counter() - started) / 5 < 0.1  # failing fast


def test_it_answers_503_with_retry_after_over_http_while_open(dummy, principal, raw_key):
    with override_settings(MCP_BREAKERS={"default": {**FAST_BREAKER, "open_duration": 4.5}}):
        open_the_breaker(dummy, principal)
        response = Client().post(
            "/api/v1/mcp/call",
            {"service": "dummy", "operation": "fetch", "params": {}},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {raw_key}",
        )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "circuit_open"
    assert 1 <= int(response["Retry-After"]) <= 5  # what is left of 4.5 s, rounded up


@pytest.mark.django_db(transaction=True)
def test_it_lets_exactly_n_trial_calls_through_then_closes_on_success(dummy, backend, tenant, principal):
    set_plan(tenant, per_minute=10_000)
    open_the_breaker(dummy, principal)
    time.sleep(FAST_BREAKER["open_duration"] + 0.05)
    before = len(dummy.request_log)
    dummy.inject_fault(delay=0.4, path="/items/")  # slow but successful: the trials overlap
    results: list = []

    def trial():
        results.append(call(principal))
        connections.close_all()

    threads = [threading.Thread(target=trial) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.success for r in results) == [False, False, False, True, True]
    assert {r.error["code"] for r in results if not r.success} == {"circuit_open"}
    assert len(dummy.request_log) - before == FAST_BREAKER["half_open_calls"]
    assert transitions() == ["closed>open", "open>half_open", "half_open>closed"]
    dummy.clear_faults()
    assert call(principal).success  # closed: calls flow again


def test_it_reopens_when_the_trial_calls_fail(dummy, backend, principal):
    open_the_breaker(dummy, principal)
    time.sleep(FAST_BREAKER["open_duration"] + 0.05)
    dummy.inject_fault(status=502, path="/items/")
    assert call(principal).error["code"] == "upstream_error"  # trial 1
    assert call(principal).error["code"] == "upstream_error"  # trial 2: 2 of 2 failed
    assert transitions() == ["closed>open", "open>half_open", "half_open>open"]
    seen = len(dummy.request_log)
    assert call(principal).error["code"] == "circuit_open"
    assert len(dummy.request_log) == seen


def test_it_counts_timeouts_as_failures(dummy, backend, principal):
    dummy.inject_fault(delay=1.0, path="/items/")
    codes = [call(principal, operation="fetch_quick").error["code"] for _ in range(4)]
    assert codes == ["timeout"] * 4
    assert transitions() == ["closed>open"]


def test_it_does_not_count_caller_errors_as_failures(dummy, backend, principal):
    dummy.inject_fault(status=404, path="/items/")
    for _ in range(6):
        assert call(principal).error["code"] == "not_found"
    for _ in range(6):
        assert call(principal, operation="refuse").error["code"] == "validation_error"
    assert transitions() == []
    dummy.clear_faults()
    assert call(principal).success


def test_it_does_not_let_rejected_credentials_open_the_breaker_for_everyone(dummy, backend, principal):
    """A 401/403 is one credential's problem (often one tenant's own key), not an outage."""
    dummy.inject_fault(status=401, path="/items/")
    for _ in range(6):
        response = call(principal)
        assert response.error["code"] == "upstream_error"
        assert response.error["details"]["upstream_status"] == 401
    assert transitions() == []
    dummy.clear_faults()
    assert call(principal).success


def test_it_leaves_operations_without_an_upstream_out_of_the_breaker(dummy, backend, principal):
    """Only open-world operations feed a breaker: local ones cost no Redis round trip."""
    for _ in range(5):
        response = route(
            MCPRequest(service="database", operation="get_tenant_stats", params={}, principal=principal)
        )
        assert response.success, response.error
    snapshot = _backend().snapshot("database", breaker.config_for("database"))
    assert snapshot["window_calls"] == 0


def test_it_opens_on_the_slow_call_rate(dummy, backend, principal):
    slow_config = {**FAST_BREAKER, "slow_call_duration": 0.1, "slow_call_rate_threshold": 50.0}
    with override_settings(MCP_BREAKERS={"default": slow_config}):
        dummy.inject_fault(delay=0.15, path="/items/")  # answers, but slowly
        results = [call(principal) for _ in range(4)]
        assert all(r.success for r in results)
        assert transitions() == ["closed>open"]
        assert "4 slow" in BreakerTransition.objects.get().reason
        assert call(principal).error["code"] == "circuit_open"


def test_it_needs_the_minimum_number_of_calls_and_the_rate(dummy, backend, principal):
    # 1 failure in 4 calls (25 %) stays under 50 %.
    dummy.inject_fault(status=500, count=1, path="/items/")
    results = [call(principal) for _ in range(4)]
    assert [r.success for r in results] == [False, True, True, True]
    assert transitions() == []


def test_it_leaves_a_service_without_breaker_alone_when_disabled(dummy, backend, principal):
    with override_settings(MCP_BREAKERS={"default": FAST_BREAKER, "dummy": {"enabled": False}}):
        dummy.inject_fault(status=500, path="/items/")
        assert [call(principal).error["code"] for _ in range(6)] == ["upstream_error"] * 6
    assert transitions() == []


def test_it_reopens_when_trial_calls_never_report(dummy, backend):
    cfg = BreakerConfig(**{**FAST_BREAKER, "half_open_max_wait": 0.3})
    store = _backend()
    for _ in range(4):
        verdict = store.acquire("dummy", cfg)
        store.record("dummy", cfg, verdict.state, verdict.generation, True, False)
    time.sleep(cfg.open_duration + 0.05)
    trials = [store.acquire("dummy", cfg) for _ in range(3)]
    assert [t.allowed for t in trials] == [True, True, False]  # two trials taken, never reported
    time.sleep(0.35)
    stale = store.acquire("dummy", cfg)
    assert not stale.allowed
    assert stale.transition == "half_open>open"
    # A late report from the old generation changes nothing.
    late = store.record("dummy", cfg, trials[0].state, trials[0].generation, False, False)
    assert late.transition == ""


def test_it_validates_breaker_settings():
    assert config_problems({"window": 10, "minimum_calls": 5}, "x") == []
    problems = config_problems({"windw": 1, "minimum_calls": 0, "open_duration": -1, "enabled": "yes"}, "x")
    assert any("unknown key 'windw'" in p for p in problems)
    assert any("x.minimum_calls" in p for p in problems)
    assert any("x.open_duration" in p for p in problems)
    assert any("x.enabled" in p for p in problems)
    with override_settings(MCP_BREAKERS={"default": {"half_open_calls": 1.5}}):
        assert [e.id for e in breaker.check_breaker_settings(None)] == ["mcp.E101"]


def test_it_shows_each_breaker_in_the_admin_and_resets_it_with_an_audit_entry(dummy, principal):
    open_the_breaker(dummy, principal)
    admin = User.objects.create_superuser("opsadmin", "ops@example.com", "pw")
    client = Client()
    client.force_login(admin)
    page = client.get("/admin/mcp_core/breakertransition/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-service="dummy"' in html
    assert '<td class="breaker-state">open</td>' in html
    assert "Reset (close)" in html
    response = client.post("/admin/mcp_core/breakertransition/reset/dummy/")
    assert response.status_code == 302
    assert transitions()[-1] == "open>closed"
    assert BreakerTransition.objects.filter(service="dummy").first().reason == "reset by user:opsadmin"
    entry = AuditEntry.objects.get(operation="breaker_reset")
    assert (entry.principal, entry.service, entry.params, entry.user_id) == (
        "user:opsadmin",
        "dummy",
        {"from_state": "open"},
        admin.pk,
    )
    assert call(principal).success


def test_it_lets_only_operators_with_the_permission_reset(dummy, principal):
    open_the_breaker(dummy, principal)
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_breakertransition"))
    client = Client()
    client.force_login(viewer)
    page = client.get("/admin/mcp_core/breakertransition/")
    assert page.status_code == 200
    assert "Reset (close)" not in page.content.decode()
    assert client.post("/admin/mcp_core/breakertransition/reset/dummy/").status_code == 403
    assert client.get("/admin/mcp_core/breakertransition/reset/dummy/").status_code in (403, 405)
    assert transitions() == ["closed>open"]
    assert not AuditEntry.objects.filter(operation="breaker_reset").exists()


def test_it_waits_for_slow_trial_traffic_instead_of_reopening(dummy, backend):
    cfg = BreakerConfig(**{**FAST_BREAKER, "half_open_max_wait": 0.3})
    store = _backend()
    for _ in range(4):
        verdict = store.acquire("dummy", cfg)
        store.record("dummy", cfg, verdict.state, verdict.generation, True, False)
    time.sleep(cfg.open_duration + 0.05)
    first = store.acquire("dummy", cfg)
    store.record("dummy", cfg, first.state, first.generation, False, False)
    time.sleep(0.35)  # longer than half_open_max_wait, but a permit was never handed out
    second = store.acquire("dummy", cfg)
    assert (second.allowed, second.state, second.transition) == (True, "half_open", "")
    closing = store.record("dummy", cfg, second.state, second.generation, False, False)
    assert closing.transition == "half_open>closed"
