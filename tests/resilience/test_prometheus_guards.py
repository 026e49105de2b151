"""/metrics sees the guards: rate-limiter refusals as they happen, breaker state as Redis holds it."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from mcp_core.contracts import MCPRequest
from mcp_core.pipeline import route

from .conftest import set_plan
from .test_breaker import open_the_breaker

pytestmark = pytest.mark.django_db


def scrape() -> dict[tuple[str, tuple], float]:
    with override_settings(METRICS_TOKEN="scrape-token", METRICS_ALLOWED_IPS=[]):
        response = Client().get("/metrics", headers={"Authorization": "Bearer scrape-token"})
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def refusals(limit: str) -> float:
    return (
        REGISTRY.get_sample_value("askpro_rate_limit_refusals_total", {"service": "dummy", "limit": limit})
        or 0
    )


def test_it_counts_rate_limit_refusals_by_limit(dummy, tenant, principal):
    set_plan(tenant, per_minute=2)
    before = refusals("rate")
    codes = [
        route(MCPRequest(service="dummy", operation="fetch", params={}, principal=principal)).error
        for _ in range(5)
    ]
    refused = sum(1 for error in codes if error and error["code"] == "rate_limited")
    assert refused == 3
    assert refusals("rate") - before == 3
    assert scrape()[("askpro_rate_limit_refusals_total", (("limit", "rate"), ("service", "dummy")))] >= 3


def test_it_reports_the_breaker_state_read_from_the_shared_store(dummy, principal):
    samples = scrape()
    assert samples[("askpro_breaker_state", (("service", "dummy"), ("state", "closed")))] == 1
    assert samples[("askpro_breaker_state", (("service", "dummy"), ("state", "open")))] == 0
    open_the_breaker(dummy, principal)
    samples = scrape()
    assert samples[("askpro_breaker_state", (("service", "dummy"), ("state", "open")))] == 1
    assert samples[("askpro_breaker_state", (("service", "dummy"), ("state", "closed")))] == 0
    assert (
        samples[
            ("askpro_breaker_transitions_total", (("service", "dummy"), ("transition", "closed_to_open")))
        ]
        >= 1
    )
    assert samples[("askpro_scrape_source_up", (("source", "breakers"),))] == 1
