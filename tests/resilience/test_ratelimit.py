"""Rate limits per tenant x service from the plan, and calls in flight per tenant."""

from __future__ import annotations

import re
import threading
import time

import pytest
from django.db import connections
from django.test import Client, override_settings

from mcp_core import shared_state
from mcp_core.contracts import MCPRequest
from mcp_core.pipeline import route

from .conftest import set_plan

pytestmark = pytest.mark.django_db
# Tests whose calls run in threads need committed rows (each thread has its own connection).
threaded = pytest.mark.django_db(transaction=True)


def call(principal, operation="fetch", service="dummy", **params):
    return route(MCPRequest(service=service, operation=operation, params=params, principal=principal))


def in_threads(count: int, func) -> list:
    results: list = [None] * count
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = func()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@threaded
def test_it_lets_exactly_the_limit_through_under_concurrency(dummy, backend, tenant, principal):
    set_plan(tenant, per_minute=10)
    responses = in_threads(50, lambda: call(principal))
    passed = [r for r in responses if r.success]
    refused = [r for r in responses if not r.success]
    assert len(passed) == 10
    assert {r.error["code"] for r in refused} == {"rate_limited"}
    assert all(r.error["details"]["retry_after"] > 0 for r in refused)
    assert len(dummy.request_log) == 10  # refused calls never reached the upstream


def test_it_sends_ratelimit_and_retry_after_headers(dummy, backend, tenant, raw_key):
    set_plan(tenant, per_minute=2, code="pro")
    client = Client()
    body = {"service": "dummy", "operation": "fetch", "params": {}}
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw_key}"}
    first = client.post("/api/v1/mcp/call", body, content_type="application/json", **auth)
    second = client.post("/api/v1/mcp/call", body, content_type="application/json", **auth)
    third = client.post("/api/v1/mcp/call", body, content_type="application/json", **auth)
    assert (first.status_code, second.status_code, third.status_code) == (200, 200, 429)
    policy = f'"pro-{tenant.pk}";q=2;w=60'
    assert first["RateLimit-Policy"] == policy
    assert re.fullmatch(rf'"pro-{tenant.pk}";r=1;t=\d+', first["RateLimit"])
    assert re.fullmatch(rf'"pro-{tenant.pk}";r=0;t=\d+', second["RateLimit"])
    assert third["RateLimit-Policy"] == policy
    assert re.fullmatch(rf'"pro-{tenant.pk}";r=0;t=\d+', third["RateLimit"])
    # 2 per minute: the next call is possible in about 30 s.
    assert 25 <= int(third["Retry-After"]) <= 31
    payload = third.json()
    assert payload["error"]["code"] == "rate_limited"
    assert payload["error"]["details"]["limit"] == "rate"
    assert payload["metadata"]["rate_limit"]["remaining"] == 0
    assert "Retry-After" not in first


def test_it_uses_the_documented_default_for_a_tenant_without_a_plan(dummy, tenant, raw_key):
    tenant.plan = None
    tenant.save(update_fields=["plan"])
    with override_settings(MCP_RATE_LIMIT_DEFAULT_PER_MINUTE=3, MCP_RATE_LIMIT_DEFAULT_CONCURRENCY=5):
        client = Client()
        statuses = []
        for _ in range(4):
            response = client.post(
                "/api/v1/mcp/call",
                {"service": "dummy", "operation": "fetch", "params": {}},
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {raw_key}",
            )
            statuses.append(response.status_code)
    assert statuses == [200, 200, 200, 429]
    assert response["RateLimit-Policy"] == '"default";q=3;w=60'


def test_it_limits_each_service_and_each_tenant_separately(dummy, backend, tenant, principal, bob, bob_key):
    from mcp_core.api_keys import api_key_authenticate

    set_plan(tenant, per_minute=2)
    set_plan(bob, per_minute=2)
    assert [call(principal).success for _ in range(3)] == [True, True, False]
    # The same tenant on another service has its own budget.
    assert call(principal, service="database", operation="get_tenant_stats").success
    # Another tenant on the same service too.
    bob_principal = api_key_authenticate(bob_key)
    assert [call(bob_principal).success for _ in range(3)] == [True, True, False]


@threaded
def test_it_limits_calls_in_flight_and_frees_each_slot_once(dummy, backend, tenant, principal):
    set_plan(tenant, per_minute=1000, concurrency=2)
    dummy.inject_fault(delay=0.6, count=2, path="/items/")
    slow = []
    threads = [
        threading.Thread(target=lambda: (slow.append(call(principal)), connections.close_all()))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.25)  # both slow calls are in flight now
    refused = call(principal)
    assert not refused.success
    assert refused.error["code"] == "rate_limited"
    assert refused.error["details"]["limit"] == "concurrency"
    assert refused.error["details"]["retry_after"] > 0
    for thread in threads:
        thread.join()
    assert all(r.success for r in slow)
    # The slots came back (failed calls too): two more calls in flight are allowed again.
    assert not call(principal, operation="refuse").success  # a failing call frees its slot as well
    dummy.inject_fault(delay=0.4, count=2, path="/items/")
    again = in_threads(2, lambda: call(principal))
    assert all(r.success for r in again), [r.error for r in again]


def test_it_leaves_no_slot_behind_in_redis(dummy, tenant, principal):
    set_plan(tenant, per_minute=1000, concurrency=5)
    for _ in range(5):
        call(principal)
    call(principal, operation="refuse")
    client = shared_state.redis_client()
    assert client.zcard(shared_state.make_key(f"rl:c:{tenant.pk}")) == 0


def test_it_refuses_every_call_when_the_plan_allows_none(dummy, backend, tenant, principal):
    set_plan(tenant, per_minute=0)
    response = call(principal)
    assert response.error["code"] == "rate_limited"
    assert dummy.request_log == []


def test_it_does_not_limit_calls_without_a_tenant(dummy, platform_key):
    from mcp_core.api_keys import api_key_authenticate

    principal = api_key_authenticate(platform_key)
    with override_settings(MCP_RATE_LIMIT_DEFAULT_PER_MINUTE=0):
        response = route(
            MCPRequest(
                service="database", operation="query", params={"sql": "SELECT 1 AS one"}, principal=principal
            )
        )
    assert response.success, response.error
    assert "rate_limit" not in response.metadata


def test_it_takes_as_many_tokens_as_a_call_weighs(backend, tenant):
    """A batch counts as its items: 4 + 4 of 10 pass, the next 4 would exceed the minute."""
    from mcp_core import ratelimit

    limits = ratelimit.Limits(policy="p", per_minute=10, concurrency=100)
    decisions = [ratelimit.decide(tenant.pk, "weighted", limits, f"slot{i}", 30.0, cost=4) for i in range(3)]
    assert [d.allowed for d in decisions] == [True, True, False]
    assert decisions[1].remaining == 2 and decisions[2].reason == "rate"
    assert ratelimit.decide(tenant.pk, "weighted", limits, "slot9", 30.0, cost=2).allowed
