"""/metrics of a real gunicorn with two workers in multiprocess mode (PROMETHEUS_MULTIPROC_DIR):
calls spread over both workers through the REST API and /mcp, failures of every outcome class
included, and the scraped counters agree with the audit rows, by service, operation and class."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from mcp_core.contracts import outcome_class
from mcp_core.models import AuditEntry
from mcp_core.registry import get_registry
from tests.mcp.conftest import ROOT, child_env, free_port
from tests.mcp.helpers import LEGACY, MODERN, modern_meta

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TOKEN = "metrics-test-token-5f1c"
_ids = itertools.count(1)


@pytest.fixture
def server(tmp_path, db):
    """gunicorn, 2 workers, metrics files in a fresh directory; Cal.com pointed at a closed port."""
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    port = free_port()
    env = child_env(
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        METRICS_TOKEN=TOKEN,
        MCP_AUDIT_FLUSH_MS="0",
        DB_POOL="1",  # a psycopg pool per worker, for the pool gauges
        DB_POOL_MAX_SIZE="4",
        CALCOM_BASE_URL=f"http://127.0.0.1:{free_port()}",  # nothing listens: upstream_error
        CALCOM_API_KEY="cal_live_metrics_test",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "askpro.wsgi:application", "-w", "2", "-b", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode()[-3000:])
            try:
                requests.get(base + "/metrics", timeout=5)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield base, metrics_dir
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def api_call(base: str, key: str, service: str, operation: str, params: dict) -> int:
    response = requests.post(
        f"{base}/api/v1/mcp/call",
        json={"service": service, "operation": operation, "params": params},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    return response.status_code


def mcp_call(base: str, key: str, tool: str, arguments: dict, era: str) -> int:
    params = {"name": tool, "arguments": arguments}
    headers = {"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {key}"}
    if era == MODERN:
        params["_meta"] = modern_meta()
        headers.update({"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": tool})
    else:
        headers["MCP-Protocol-Version"] = LEGACY
    body = {"jsonrpc": "2.0", "id": next(_ids), "method": "tools/call", "params": params}
    return requests.post(f"{base}/mcp", data=json.dumps(body), headers=headers, timeout=30).status_code


def scrape(base: str, **headers: str) -> requests.Response:
    return requests.get(base + "/metrics", headers=headers, timeout=10)


def test_it_counts_every_call_across_two_workers_as_the_audit_does(server, alice, alice_key, platform_key):
    server, metrics_dir = server
    assert scrape(server).status_code == 403  # no token: refused
    assert scrape(server, Authorization="Bearer wrong").status_code == 403

    work = []
    for i in range(12):
        # success, caller_error (validation), not_configured (no broker), service_failure
        work.append(lambda: api_call(server, alice_key, "database", "get_call_stats", {"days": 7}))
        work.append(lambda: api_call(server, alice_key, "database", "get_call_stats", {"days": "x"}))
        work.append(lambda: api_call(server, platform_key, "queue", "get_overview", {}))
        work.append(lambda: api_call(server, alice_key, "calcom", "get_event_types", {}))
        era = MODERN if i % 2 else LEGACY
        work.append(lambda era=era: mcp_call(server, alice_key, "database_get_call_stats", {"days": 3}, era))
        work.append(lambda era=era: mcp_call(server, alice_key, "database_get_call_stats", {"days": -1}, era))
        work.append(lambda: api_call(server, "askp_0000000000_made-up", "database", "get_call_stats", {}))
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(lambda job: job(), work))
    assert 200 in statuses and 400 in statuses and 401 in statuses and 503 in statuses

    response = scrape(server, Authorization=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    counted = Counter()
    for sample in families["askpro_mcp_calls"].samples:
        if sample.name == "askpro_mcp_calls_total" and sample.value:
            labels = sample.labels
            counted[(labels["service"], labels["operation"], labels["outcome"])] += int(sample.value)

    known = {(op.service, op.name) for op in get_registry().operations()}
    audited = Counter()
    for service, operation, code in AuditEntry.objects.values_list("service", "operation", "error_code"):
        if (service, operation) not in known:
            service = operation = "_unknown"
        audited[(service, operation, outcome_class(code).value)] += 1

    assert counted == audited
    assert {outcome for (_, _, outcome) in audited} == {
        "success",
        "caller_error",
        "not_configured",
        "service_failure",
    }
    assert sum(audited.values()) == len(work)

    # Both workers served calls: each keeps its own file, and /metrics summed them.
    assert len(list(metrics_dir.glob("counter_*.db"))) == 2
    durations = sum(
        s.value
        for s in families["askpro_mcp_call_duration_seconds"].samples
        if s.name == "askpro_mcp_call_duration_seconds_count" and s.labels["operation"] == "get_call_stats"
    )
    assert durations == sum(n for (_, op, _), n in counted.items() if op == "get_call_stats")
    # Live gauges are summed over the workers: each has a pool of at most 4 connections. A worker
    # publishes its pool figures when it serves a request at most every 5 s, so one that has not
    # served since its first refresh may not show yet: keep calling (bounded) until both do.
    deadline = time.monotonic() + 20
    while True:
        pools = {s.labels["state"]: s.value for s in families["askpro_db_pool_connections"].samples}
        if pools["max"] == 2 * 4 or time.monotonic() > deadline:
            break
        time.sleep(1)
        for _ in range(4):
            api_call(server, alice_key, "database", "get_call_stats", {"days": 7})
        scraped = scrape(server, Authorization=f"Bearer {TOKEN}").text
        families = {f.name: f for f in text_string_to_metric_families(scraped)}
    assert pools["max"] == 2 * 4
    assert 0 <= pools["in_use"] <= pools["max"]
    http = families["askpro_http_requests"].samples
    assert any(s.labels["route"] == "/api/v1/mcp/call" and s.labels["status"] == "200" for s in http)
    assert any(s.labels["route"] == "/mcp" for s in http)
    assert ("askpro_queue_depth" in families) is False  # eager Celery: no broker to read
    backlog = families["askpro_webhook_backlog"].samples
    # One backlog series per provider that a server declares inbound webhooks for.
    assert {s.labels["provider"] for s in backlog} == set(get_registry().webhooks)
