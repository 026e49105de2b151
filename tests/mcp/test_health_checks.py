"""The platform checks of a health run: database, cache (degraded when it fails), and the broker
when one is configured, reached for real and named without its URL."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import override_settings

from mcp_core.health import HealthStatus, _broker, _cache, _database, platform_checks

pytestmark = pytest.mark.django_db

DEAD_REDIS = "redis://:s3cret@127.0.0.1:1/0"  # nothing listens on port 1


def test_it_checks_the_broker_only_when_one_is_configured():
    with override_settings(CELERY_BROKER_URL=None):
        assert set(platform_checks()) == {"database", "cache"}
    with override_settings(CELERY_BROKER_URL="redis://127.0.0.1:6379/0", CELERY_TASK_ALWAYS_EAGER=False):
        assert set(platform_checks()) == {"database", "cache", "broker"}


def test_it_reaches_a_real_broker_and_names_an_unreachable_one_without_its_url():
    from askpro.celery import app

    original = app.conf.broker_url
    try:
        app.conf.broker_url = "redis://127.0.0.1:6379/0"
        assert _broker(3.0).status == HealthStatus.HEALTHY
        app.conf.broker_url = DEAD_REDIS
        result = _broker(1.0)
        assert result.status == HealthStatus.UNHEALTHY
        assert result.detail.startswith("broker unreachable")
        assert "s3cret" not in result.detail
    finally:
        app.conf.broker_url = original


def test_it_reports_the_database_and_the_cache():
    assert _database().status == HealthStatus.HEALTHY
    assert _cache().status == HealthStatus.HEALTHY


def test_it_reports_a_dead_cache_as_degraded_without_its_url():
    dead = {
        **settings.CACHES["default"],
        "LOCATION": DEAD_REDIS,
        "OPTIONS": {**settings.CACHES["default"].get("OPTIONS", {}), "SOCKET_CONNECT_TIMEOUT": 0.5},
    }
    with override_settings(CACHES={**settings.CACHES, "default": dead}):  # Django reconnects its caches
        result = _cache()
    assert result.status == HealthStatus.DEGRADED
    assert result.detail.startswith("cache unreachable")
    assert "s3cret" not in result.detail


def test_it_still_runs_and_stores_a_run_when_the_cache_holding_the_lock_is_dead(fresh_registry):
    from mcp_core.health import run_checks_coalesced
    from mcp_core.models import HealthRun
    from tests.mcp.health_servers import paths

    dead = {
        **settings.CACHES["default"],
        "LOCATION": DEAD_REDIS,
        "OPTIONS": {**settings.CACHES["default"].get("OPTIONS", {}), "SOCKET_CONNECT_TIMEOUT": 0.5},
    }
    with override_settings(MCP_SERVERS=paths("Fine"), CACHES={**settings.CACHES, "default": dead}):
        snapshot = run_checks_coalesced(trigger=HealthRun.Trigger.API)
    assert snapshot.source == "live"
    assert snapshot.services["fine"].status == HealthStatus.HEALTHY
    assert snapshot.platform["cache"].status == HealthStatus.DEGRADED
    assert snapshot.status == "degraded"
    assert HealthRun.objects.get().status == "degraded"
