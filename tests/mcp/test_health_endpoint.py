"""`/health/` (django-health-check): database, cache, broker when configured, and every MCP server."""

from __future__ import annotations

import pytest
from django.test import override_settings

from mcp_core.healthchecks import CeleryBroker, control_plane_checks
from tests.mcp.health_servers import paths

pytestmark = pytest.mark.django_db


def test_it_reports_database_cache_and_each_mcp_server(client, fresh_registry):
    with override_settings(MCP_SERVERS=paths("Fine", "Unconfigured")):
        response = client.get("/health/?format=json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body == {
        "Database(alias='default')": "OK",
        "Cache(alias='default')": "OK",
        "MCPServerHealth(service='fine')": "OK",
        "MCPServerHealth(service='unconfigured')": "OK",  # not_configured is not a failure
    }


def test_it_fails_when_a_server_is_unhealthy_or_degraded(client, fresh_registry):
    with override_settings(MCP_SERVERS=paths("Fine", "Broken", "Slowish")):
        response = client.get("/health/", headers={"Accept": "application/json"})
    assert response.status_code == 500
    body = response.json()
    assert body["MCPServerHealth(service='fine')"] == "OK"
    assert body["MCPServerHealth(service='broken')"].startswith("Unavailable: check failed")
    assert body["MCPServerHealth(service='slowish')"] == "Warning: p99 above 2s"


def test_it_checks_the_broker_only_when_one_is_configured(fresh_registry):
    with override_settings(CELERY_BROKER_URL=None):
        assert not any(isinstance(check, CeleryBroker) for check in control_plane_checks())
    with override_settings(CELERY_BROKER_URL="redis://127.0.0.1:6379/0", CELERY_TASK_ALWAYS_EAGER=False):
        assert any(isinstance(check, CeleryBroker) for check in control_plane_checks())


def test_it_reaches_a_real_broker_and_names_an_unreachable_one_without_its_url():
    from askpro.celery import app

    original = app.conf.broker_url
    try:
        app.conf.broker_url = "redis://127.0.0.1:6379/0"
        CeleryBroker().run()  # Redis on this machine answers
        app.conf.broker_url = "redis://:s3cret@127.0.0.1:1/0"  # nothing listens on port 1
        with pytest.raises(Exception) as caught:
            CeleryBroker().run()
        assert "broker unreachable" in str(caught.value)
        assert "s3cret" not in str(caught.value)
    finally:
        app.conf.broker_url = original


def test_it_renders_the_html_page(client, fresh_registry):
    with override_settings(MCP_SERVERS=paths("Fine")):
        response = client.get("/health/", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert b"MCPServerHealth" in response.content
