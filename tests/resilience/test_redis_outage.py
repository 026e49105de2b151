"""Redis gone mid-test: a private redis-server holds the limiter and breaker state, then is
killed by pid. Calls keep succeeding (fail open), errors are logged once, health says degraded."""

from __future__ import annotations

import logging
import time

import pytest
from django.conf import settings
from django.test import Client, override_settings

from mcp_core import shared_state
from mcp_core.contracts import MCPRequest
from mcp_core.pipeline import route

from .conftest import PrivateRedis, set_plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def private_state(private_redis, dummy):
    caches = {
        **settings.CACHES,
        "resilience": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": private_redis.url,
            "KEY_PREFIX": "outage-test",
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 0.2,
                "SOCKET_TIMEOUT": 0.2,
            },
        },
    }
    with override_settings(
        CACHES=caches, MCP_RESILIENCE_CACHE="resilience", MCP_RESILIENCE_REDIS_RETRY_SECONDS=0.3
    ):
        yield private_redis
    shared_state.health.reset()


def call(principal):
    return route(MCPRequest(service="dummy", operation="fetch", params={}, principal=principal))


def health(raw_key):
    return Client().get("/api/v1/mcp/health", HTTP_AUTHORIZATION=f"Bearer {raw_key}").json()


def test_it_fails_open_when_redis_dies_and_health_shows_degraded(
    private_state, tenant, principal, raw_key, caplog
):
    set_plan(tenant, per_minute=3)
    # Enforced through the private Redis first.
    assert [call(principal).success for _ in range(4)] == [True, True, True, False]
    assert private_state.proc.poll() is None
    before = health(raw_key)
    assert before["resilience"]["status"] == "healthy"
    assert before["resilience"]["backend"] == "redis"

    private_state.kill()
    caplog.set_level(logging.ERROR, logger="mcp_core.resilience")
    results = [call(principal) for _ in range(20)]
    assert all(r.success for r in results), [r.error for r in results if not r.success]
    assert all("rate_limit" not in r.metadata for r in results)  # no limiter state to report
    errors = [r for r in caplog.records if r.name == "mcp_core.resilience"]
    assert len(errors) == 1  # rate-limited logging: one line, not one per call
    assert "fail open" in errors[0].getMessage()
    assert "outage-test" not in caplog.text and str(private_state.port) not in errors[0].getMessage()

    report = health(raw_key)
    assert report["status"] == "degraded"
    assert report["resilience"]["status"] == "degraded"
    assert report["resilience"]["fail_open_calls"] >= 20
    assert "pools" in report

    # Redis is back (a fresh one on the same port, empty): limits are enforced again.
    revived = PrivateRedis(port=private_state.port)
    try:
        time.sleep(0.35)  # the pause after the last failure (MCP_RESILIENCE_REDIS_RETRY_SECONDS=0.3)
        assert [call(principal).success for _ in range(4)] == [True, True, True, False]
        assert health(raw_key)["resilience"]["status"] == "healthy"
    finally:
        revived.kill()


def test_it_reports_every_pool_in_health(dummy, tenant, principal, raw_key):
    assert call(principal).success  # opens an HTTP pool to the sandbox
    report = health(raw_key)
    pools = report["pools"]
    db = pools["database"]["default"]
    assert db["pooled"] is True
    assert db["max_size"] == settings.DB_POOL_MAX_SIZE
    assert db["in_use"] >= 1  # this very request holds one
    assert db["size"] >= db["in_use"]
    assert {"waiting", "wait_ms_total", "idle"} <= set(db)
    http = next(row for row in pools["http"] if row["service"] == "dummy" and row["base_url"] == dummy.url)
    assert http["pools"][0]["requests"] >= 1
    redis = pools["redis"]["default"]
    assert redis["created"] >= 1
    assert redis["in_use"] + redis["available"] == redis["created"]
    assert report["resilience"]["breakers"]["dummy"] == "closed"
