"""/metrics in one process: off until configured, a token or an allowed address admits a
scraper, and the scrape-time gauges (webhook backlog, audit queue, pools) are read when asked."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings
from prometheus_client.parser import text_string_to_metric_families

from mcp_core.pipeline import call_operation
from mcp_core.recorder import get_recorder
from mcp_servers.webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@override_settings(METRICS_TOKEN=None, METRICS_ALLOWED_IPS=[])
def test_it_is_off_until_a_token_or_an_address_is_configured():
    assert Client().get("/metrics").status_code == 404


@override_settings(METRICS_TOKEN="tok-3a9", METRICS_ALLOWED_IPS=[])
def test_it_admits_the_bearer_token_only():
    assert Client().get("/metrics").status_code == 403
    refused = Client().get("/metrics", headers={"Authorization": "Bearer tok-3a"})
    assert refused.status_code == 403 and refused["WWW-Authenticate"].startswith("Bearer")
    assert b"tok-3a9" not in refused.content
    assert Client().get("/metrics", headers={"Authorization": "Bearer tok-3a9"}).status_code == 200
    assert Client().post("/metrics", headers={"Authorization": "Bearer tok-3a9"}).status_code == 405


def test_it_admits_an_allowed_address_with_or_without_a_token():
    with override_settings(METRICS_TOKEN=None, METRICS_ALLOWED_IPS=["10.0.0.0/8"]):
        assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 200
        assert Client(REMOTE_ADDR="192.168.1.1").get("/metrics").status_code == 403
    with override_settings(METRICS_TOKEN="tok", METRICS_ALLOWED_IPS=["::1"]):
        assert Client(REMOTE_ADDR="::1").get("/metrics").status_code == 200
        assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 403
        ok = Client(REMOTE_ADDR="127.0.0.1").get("/metrics", headers={"Authorization": "Bearer tok"})
        assert ok.status_code == 200


def test_it_refuses_a_bad_allow_list_at_start_up(monkeypatch):
    import importlib

    from django.core.exceptions import ImproperlyConfigured

    import askpro.settings

    monkeypatch.setenv("METRICS_ALLOWED_IPS", "10.0.0.0/8,not-an-ip")
    with pytest.raises(ImproperlyConfigured, match="METRICS_ALLOWED_IPS: 'not-an-ip'"):
        importlib.reload(askpro.settings)
    monkeypatch.delenv("METRICS_ALLOWED_IPS")
    importlib.reload(askpro.settings)


@override_settings(METRICS_TOKEN="t", METRICS_ALLOWED_IPS=[])
def test_it_reads_the_backlog_and_counts_calls_by_outcome_class(alice, platform_key):
    from mcp_core.api_keys import api_key_authenticate

    for n, status in enumerate(["received", "received", "processing", "processed", "failed"]):
        WebhookEvent.objects.create(
            provider="stripe",
            event_id=f"evt_{n}",
            idempotency_key=f"evt_{n}",
            type="x",
            status=status,
            payload={},
        )
    principal = api_key_authenticate(platform_key)
    scrape = lambda: samples(Client().get("/metrics", headers={"Authorization": "Bearer t"}).content.decode())  # noqa: E731
    before = scrape()
    assert call_operation(
        "database", "get_tenant_stats", {}, principal=principal, tenant="alice-salon"
    ).success
    assert not call_operation(
        "database", "get_tenant_stats", {}, principal=principal, tenant="nobody"
    ).success
    assert not call_operation(
        "queue", "get_overview", {}, principal=principal
    ).success  # eager: not_configured
    after = scrape()

    def delta(operation: str, outcome: str) -> float:
        key = (
            "askpro_mcp_calls_total",
            (("operation", operation), ("outcome", outcome), ("service", operation and _svc[operation]),
             ("transport", "internal")),
        )  # fmt: skip
        return after.get(key, 0) - before.get(key, 0)

    _svc = {"get_tenant_stats": "database", "get_overview": "queue"}
    assert delta("get_tenant_stats", "success") == 1
    assert delta("get_tenant_stats", "caller_error") == 1
    assert delta("get_overview", "not_configured") == 1
    err = ("askpro_mcp_call_errors_total", (("code", "not_found"), ("service", "database")))
    assert after[err] - before.get(err, 0) == 1
    backlog = {k[1]: v for k, v in after.items() if k[0] == "askpro_webhook_backlog"}
    assert backlog[(("provider", "stripe"), ("status", "received"))] == 2
    assert backlog[(("provider", "stripe"), ("status", "processing"))] == 1
    assert backlog[(("provider", "calcom"), ("status", "received"))] == 0
    assert after[("askpro_scrape_source_up", (("source", "server:webhooks"),))] == 1
    assert ("askpro_audit_queue_pending", ()) in after


def test_it_reports_the_audit_queue_of_this_process(settings):
    settings.MCP_AUDIT_FLUSH_MS = 60_000  # a long interval: rows stay queued while we look
    recorder = get_recorder()
    audit = {"request_id": "q1", "transport": "api", "service": "x", "operation": "y"}
    recorder.record(audit, None, batched=True)
    recorder.record({**audit, "request_id": "q2"}, None, batched=True)
    from prometheus_client import REGISTRY

    assert REGISTRY.get_sample_value("askpro_audit_queue_pending") == 2
    with recorder._lock:
        recorder._pending.clear()  # never written: these rows are not real calls
    recorder.flush()
    assert REGISTRY.get_sample_value("askpro_audit_queue_pending") == 0


@override_settings(METRICS_TOKEN="t", METRICS_ALLOWED_IPS=[])
def test_it_documents_every_metric_it_serves_and_the_dashboard_uses_only_those():
    import json
    import re
    from pathlib import Path

    docs = Path(__file__).resolve().parents[2] / "docs"
    documented = set(re.findall(r"^\| `(askpro_[a-z_]+)`", (docs / "observability.md").read_text(), re.M))
    served = Client().get("/metrics", headers={"Authorization": "Bearer t"}).content.decode()
    names = {f.name for f in text_string_to_metric_families(served) if f.name.startswith("askpro_")}
    suffixed = {n + "_total" if n + "_total" in documented else n for n in names}
    assert suffixed - documented == set()
    dashboard = json.loads((docs / "grafana-dashboard.json").read_text())
    used = {
        re.sub(r"_(bucket|count|sum)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"askpro_[a-z_]+", target["expr"])
    }
    assert used and used - documented == set()
    assert {"askpro_mcp_calls_total", "askpro_breaker_state", "askpro_webhook_backlog"} <= used
