"""Upstream failures mapped to error codes (401, 404, 409, 429, 5xx, timeouts) and the health check."""

from __future__ import annotations

import pytest

from mcp_core.health import HealthStatus
from mcp_core.registry import get_registry
from mcp_servers.retell.client import RetellClient


def test_it_maps_rejected_credentials_to_upstream_error_without_the_key(world):
    world.alice.retell_api_key = "key_wrong_0123456789abcdef"
    world.alice.save(update_fields=["retell_api_key"])
    response = world.call("list_agents")
    assert response.error_code == "upstream_error"
    assert response.error["details"]["upstream_status"] == 401
    assert "key_wrong" not in str(response.error)


def test_it_maps_a_conflict_to_conflict(world):
    world.retell.inject_fault(status=409, path=r"update-retell-llm", count=1)
    response = world.call("update_agent_prompt", {"prompt": _prompt()})
    assert response.error_code == "conflict"
    assert response.error["details"]["upstream_status"] == 409


def test_it_maps_a_persistent_429_to_rate_limited_with_retry_after(world):
    world.retell.throttle(times=10, retry_after=1.0, path=r"list-agents")
    response = world.call("list_agents")
    assert response.error_code == "rate_limited"
    assert response.error["details"]["retry_after"] == 1.0
    # The read is idempotent, so the client retried (honouring Retry-After) before giving up.
    assert len(world.retell.requests_to(r"list-agents")) == 3


def test_it_retries_a_passing_503_on_reads(world):
    world.retell.inject_fault(status=503, path=r"list-calls", count=1)
    response = world.call("list_calls")
    assert response.success, response.error
    assert len(world.retell.requests_to(r"list-calls")) == 2


def test_it_maps_a_500_to_upstream_error_and_never_retries_a_call_creation(world):
    world.retell.inject_fault(status=500, path=r"create-phone-call")
    response = world.call("create_phone_call", {"from_number": "+4930111111", "to_number": "+4917612345678"})
    assert response.error_code == "upstream_error"
    assert response.error["details"]["upstream_status"] == 500
    assert len(world.retell.requests_to(r"create-phone-call")) == 1


def test_it_maps_a_stalled_upstream_to_timeout(world, monkeypatch):
    monkeypatch.setattr(RetellClient, "read_timeout", 0.2)
    monkeypatch.setattr(RetellClient, "max_retries", 0)
    world.retell.inject_fault(delay=1.0, path=r"get-agent")
    response = world.call("get_agent")
    assert response.error_code == "timeout"


def test_it_maps_an_unreachable_upstream_to_upstream_error(world, settings):
    settings.RETELL_BASE_URL = "http://127.0.0.1:9"  # discard port: nothing listens
    response = world.call("test_connection")
    assert response.error_code == "upstream_error"


# --- health ---
def _server():
    return get_registry().get_server("retell")


def test_it_is_healthy_when_retell_accepts_the_platform_key(world):
    result = _server().health()
    assert result.status == HealthStatus.HEALTHY, result.detail
    sent = world.retell.requests_to(r"list-agents")
    assert sent and sent[0].query.get("limit") == ["1"]  # the cheap call


def test_it_is_unhealthy_when_retell_rejects_every_key(world, settings):
    settings.RETELL_API_KEY = "key_revoked_0123456789abcdef"
    result = _server().health()
    assert result.status == HealthStatus.UNHEALTHY
    assert "401" in result.detail
    assert "key_revoked" not in result.detail


def test_it_is_degraded_when_one_tenants_own_key_fails(world):
    world.bob.retell_api_key = "key_bob_revoked_0123456789abcdef"
    world.bob.save(update_fields=["retell_api_key"])
    result = _server().health()
    assert result.status == HealthStatus.DEGRADED
    assert "bob-practice" in result.detail


def test_it_checks_tenant_keys_when_there_is_no_platform_key(world, settings):
    settings.RETELL_API_KEY = None
    server = _server()
    assert server.is_configured() is False
    world.alice.retell_api_key = "key_alice_own_0123456789abcdef"
    world.alice.save(update_fields=["retell_api_key"])
    assert server.is_configured() is True
    result = server.health()
    assert result.status == HealthStatus.HEALTHY, result.detail
    assert (
        world.retell.requests_to(r"list-agents")[0]
        .headers["authorization"]
        .endswith("alice_own_0123456789abcdef")
    )


@pytest.mark.parametrize("status", [500, 502])
def test_it_is_unhealthy_when_retell_fails(world, status):
    world.retell.inject_fault(status=status)
    assert _server().health().status == HealthStatus.UNHEALTHY


def _prompt() -> str:
    from .conftest import VALID_PROMPT

    return VALID_PROMPT


def test_it_reports_not_configured_without_any_key(world, settings):
    from mcp_core.health import check_servers

    settings.RETELL_API_KEY = None
    result = check_servers([_server()])["retell"]
    assert result.status == HealthStatus.NOT_CONFIGURED
    assert not world.retell.request_log


def test_it_keeps_health_inside_its_time_budget(world, monkeypatch):
    import time

    from mcp_servers.retell import server as retell_server

    monkeypatch.setattr(retell_server, "HEALTH_BUDGET_SECONDS", 0.5)
    world.bob.retell_api_key = "key_bob_own_0123456789abcdef"
    world.bob.save(update_fields=["retell_api_key"])
    world.retell.inject_fault(delay=2.0, path=r"list-agents")
    started = time.perf_counter()
    result = _server().health()
    assert time.perf_counter() - started < 1.5
    assert result.status == HealthStatus.UNHEALTHY
    assert "not checked" in result.detail
