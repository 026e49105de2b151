"""Two server processes (gunicorn, one worker each) against the same test database and Redis
prefix share rate limits and breaker state: they are one platform, not two."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.db import connection

from mcp_core.models import BreakerTransition

from .conftest import FAST_BREAKER, free_port, set_plan
from .dummy_upstream import DummySandbox

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BREAKERS = {"default": {**FAST_BREAKER, "open_duration": 30.0}}


def _database_url() -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def _start(port: int, sandbox_url: str) -> subprocess.Popen:
    env = {
        **os.environ,  # includes this run's CACHE_KEY_PREFIX: same Redis namespace as the test
        "DJANGO_SETTINGS_MODULE": "tests.resilience.proc_settings",
        "DATABASE_URL": _database_url(),
        "DUMMY_UPSTREAM_URL": sandbox_url,
        "TEST_MCP_BREAKERS": json.dumps(BREAKERS),
        "DB_POOL_MIN_SIZE": "1",
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "askpro.wsgi:application",
            "-w",
            "1",
            "--threads",
            "16",
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_up(base: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read().decode()[-3000:])
        try:
            urllib.request.urlopen(base + "/api/v1/mcp/services", timeout=1)  # noqa: S310
        except urllib.error.HTTPError:
            return  # 401: the app answers
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{base} did not come up")


@pytest.fixture(scope="module")
def sandbox():
    """One sandbox for the module, so that both server processes start only once."""
    server = DummySandbox().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh_sandbox(sandbox):
    sandbox.clear_faults()
    with sandbox.lock:
        sandbox.request_log.clear()


@pytest.fixture(scope="module")
def two_servers(sandbox, django_db_setup):
    ports = [free_port(), free_port()]
    procs = [_start(port, sandbox.url) for port in ports]
    try:
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        for base, proc in zip(bases, procs, strict=True):
            _wait_up(base, proc)
        yield bases
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGINT)  # quick shutdown: nothing is in flight
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


def post(base: str, key: str, operation: str = "fetch") -> tuple[int, dict, dict]:
    request = urllib.request.Request(
        base + "/api/v1/mcp/call",
        data=json.dumps({"service": "dummy", "operation": operation, "params": {}}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:  # noqa: S310
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def test_it_shares_one_exact_rate_limit_between_two_processes(two_servers, dummy, tenant, raw_key):
    set_plan(tenant, per_minute=10)
    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(lambda i: post(two_servers[i % 2], raw_key), range(50)))
    statuses = [status for status, _, _ in results]
    assert statuses.count(200) == 10, statuses
    assert statuses.count(429) == 40
    assert len(dummy.request_log) == 10
    refused = [(headers, body) for status, headers, body in results if status == 429]
    assert all(int(h["Retry-After"]) >= 1 for h, _ in refused)
    assert all(h["RateLimit-Policy"] == f'"limited-{tenant.pk}";q=10;w=60' for h, _ in refused)
    # Both processes refused calls: with per-process state each would have let 10 through.
    assert {i % 2 for i, (status, _, _) in enumerate(results) if status == 429} == {0, 1}


def test_it_fails_fast_in_one_process_on_a_breaker_the_other_opened(two_servers, dummy, tenant, raw_key):
    set_plan(tenant, per_minute=10_000)
    first, second = two_servers
    dummy.inject_fault(status=500, path="/items/")
    for _ in range(FAST_BREAKER["minimum_calls"]):
        status, _, body = post(first, raw_key)
        assert (status, body["error"]["code"]) == (502, "upstream_error")
    seen = len(dummy.request_log)
    status, headers, body = post(second, raw_key)
    assert (status, body["error"]["code"]) == (503, "circuit_open")
    assert int(headers["Retry-After"]) >= 1
    assert len(dummy.request_log) == seen  # the second process never called the upstream
    transitions = list(
        BreakerTransition.objects.filter(service="dummy").values_list("from_state", "to_state")
    )
    assert transitions == [("closed", "open")]
