"""The Procfile's web process (gunicorn from deploy/gunicorn.conf.py, askpro.settings, DEBUG off):
static files after collectstatic, liveness and readiness with the database taken away, a reload
(SIGHUP) that drops no request, and a stop (SIGTERM) that answers and audits the requests in
flight."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis
from django.db import connection

from mcp_core.models import AuditEntry

from .conftest import (
    SLOW_SERVER,
    TCPProxy,
    database_url,
    mcp_servers_with,
    production_env,
    start_web,
    stop,
    wait_for,
)

# django_db: the server processes need this run's test database, which pytest-django creates
# only for a run that selects a test marked for it.
pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - local test server
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def call_wait(base: str, key: str, *, marker: str, seconds: float, request_id: str) -> dict:
    """tools/call slow_wait over /mcp (2025-11-25 era), one new connection per call."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "slow_wait", "arguments": {"marker": marker, "seconds": seconds}}}  # fmt: skip
    request = urllib.request.Request(
        base + "/mcp",
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2025-11-25",
            "Authorization": f"Bearer {key}",
            "X-Request-ID": request_id,
        },
    )
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - local test server
        return json.loads(response.read())


def worker_pids(master: int) -> set[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}


@pytest.fixture(scope="module")
def web(static_root, django_db_setup, django_db_blocker, tmp_path_factory):
    """One web process for the module, reaching the database through a proxy the tests can cut."""
    with django_db_blocker.unblock():
        proxy = TCPProxy(int(connection.settings_dict["PORT"] or 5432)).start()
        env = production_env(
            DATABASE_URL=database_url(port=proxy.port),
            STATIC_ROOT=str(static_root),
            # One worker: every probe of a test reaches the same process (and its pool).
            WEB_CONCURRENCY="1",
            DB_POOL_TIMEOUT="3",  # a pool waiting for a dead database gives up after 3 s
            MCP_SERVERS=mcp_servers_with(SLOW_SERVER),
        )
    log = tmp_path_factory.mktemp("web") / "web.log"
    metrics_dir = tmp_path_factory.mktemp("prometheus")
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    proc, base = start_web(env, log)
    try:
        yield SimpleNamespace(
            proc=proc, base=base, proxy=proxy, log=log, static_root=static_root, metrics_dir=metrics_dir
        )
    finally:
        stop(proc)
        proxy.stop()


def test_it_serves_static_files_under_hashed_names_compressed_and_cached_for_good(web):
    status, _, page = get(web.base + "/admin/login/")
    assert status == 200
    hashed = re.search(rb'/static/(admin/css/base\.[0-9a-f]{12}\.css)"', page)
    assert hashed, "the admin page links the stylesheet by its hashed name"
    name = hashed.group(1).decode()

    status, headers, body = get(f"{web.base}/static/{name}", {"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert headers["Cache-Control"] == "max-age=315360000, public, immutable"
    assert "Accept-Encoding" in headers["Vary"]
    assert gzip.decompress(body) == (web.static_root / name).read_bytes()

    status, headers, body = get(f"{web.base}/static/admin/css/base.css")
    assert status == 200 and "Content-Encoding" not in headers
    assert headers["Cache-Control"] == "max-age=60, public"  # an unhashed name may change
    assert body == (web.static_root / "admin/css/base.css").read_bytes()

    assert get(f"{web.base}/static/admin/css/no-such-file.css")[0] == 404


def test_it_is_live_but_not_ready_while_the_database_is_unreachable(web):
    status, _, body = get(web.base + "/health/ready")
    assert (status, json.loads(body)) == (200, {"status": "ready"})
    web.proxy.stop()
    try:
        status, _, body = get(web.base + "/health/ready")
        assert status == 503
        assert json.loads(body) == {
            "status": "not_ready",
            "problems": ["database unreachable (OperationalError)"],
        }
        for _ in range(2):
            status, _, body = get(web.base + "/health/live")
            assert (status, json.loads(body)) == (200, {"status": "alive"})
    finally:
        web.proxy.start()
    wait_for(lambda: get(web.base + "/health/ready")[0] == 200, timeout=60, interval=0.5)


def test_it_replaces_connections_a_database_restart_cut_before_a_request_gets_one(web):
    ready = web.base + "/health/ready"
    assert [get(ready)[0] for _ in range(4)] == [200] * 4
    web.proxy.stop()  # the database restarts while nothing is asked of it
    web.proxy.start()
    # Every idle pooled connection is dead now. Each is checked as it leaves the pool
    # (askpro/pgbackend) and replaced: the first request waits for a new one, none fails.
    assert [get(ready)[0] for _ in range(12)] == [200] * 12


@pytest.mark.django_db(transaction=True)
def test_it_reloads_on_sighup_without_dropping_a_request(web, platform_key):
    before = worker_pids(web.proc.pid)
    assert len(before) == 1
    answered, failed = [], []
    done = threading.Event()

    def client(n: int) -> None:
        i = 0
        while not done.is_set():
            i += 1
            request_id = f"reload-{n}-{i}"
            try:
                reply = call_wait(
                    web.base, platform_key, marker=request_id, seconds=0.05, request_id=request_id
                )
                ok = reply["result"]["isError"] is False
                (answered if ok else failed).append(request_id if ok else reply)
            except Exception as exc:  # noqa: BLE001 - every failure is the finding
                failed.append(f"{request_id}: {exc!r}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(answered) >= 20, timeout=60)
        os.kill(web.proc.pid, signal.SIGHUP)
        # New workers (the new code) serve; the old ones finish what they hold and leave.
        wait_for(
            lambda: (pids := worker_pids(web.proc.pid)) and len(pids) == 1 and not pids & before, timeout=90
        )
        settled = len(answered)
        wait_for(lambda: len(answered) >= settled + 20, timeout=60)
    finally:
        done.set()
        for thread in threads:
            thread.join(timeout=90)
    assert failed == [], web.log.read_text()[-6000:]
    assert web.proc.poll() is None
    # Every answered call is audited, also those whose (old) worker wrote its queue when it left.
    wait_for(lambda: AuditEntry.objects.filter(request_id__in=answered).count() == len(answered), timeout=30)
    # The old worker's live gauges left the Prometheus sums with it (child_exit in the config);
    # its counters stay, as counters must.
    files = {path.name for path in web.metrics_dir.iterdir()}
    (old_pid,) = before
    assert f"counter_{old_pid}.db" in files
    assert not [name for name in files if name.startswith("gauge_live") and name.endswith(f"_{old_pid}.db")]


@pytest.mark.django_db(transaction=True)
def test_it_answers_and_audits_the_requests_in_flight_when_stopped(static_root, platform_key, tmp_path):
    # Batched audit rows with an interval no test waits for: only the stop can write them.
    env = production_env(
        STATIC_ROOT=str(static_root),
        WEB_CONCURRENCY="4",
        MCP_AUDIT_FLUSH_MS="600000",
        MCP_SERVERS=mcp_servers_with(SLOW_SERVER),
    )
    proc, base = start_web(env, tmp_path / "web.log")
    marker = f"inflight-{os.getpid()}-{time.monotonic_ns()}"
    r = redis.Redis.from_url(env["REDIS_URL"])
    # One per worker (sync workers: one request each), all running when the stop begins.
    ids = [f"{marker}-{n}" for n in range(4)]
    replies: dict[str, tuple[float, dict | Exception]] = {}

    def client(request_id: str) -> None:
        try:
            reply = call_wait(base, platform_key, marker=marker, seconds=5, request_id=request_id)
        except Exception as exc:  # noqa: BLE001 - recorded and asserted below
            reply = exc
        replies[request_id] = (time.monotonic(), reply)

    threads = [threading.Thread(target=client, args=(request_id,)) for request_id in ids]
    try:
        for thread in threads:
            thread.start()
        wait_for(lambda: int(r.get(f"{marker}:started") or 0) == len(ids), timeout=30)
        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(timeout=60)
        assert proc.wait(timeout=60) == 0
    finally:
        stop(proc)
        r.delete(f"{marker}:started")

    for request_id in ids:
        answered_at, reply = replies[request_id]
        assert not isinstance(reply, Exception), f"{request_id}: {reply!r}"
        assert reply["result"]["isError"] is False
        assert reply["result"]["structuredContent"] == {"marker": marker, "waited": 5.0}
        assert answered_at > stopped_at, "the request was still in flight when the stop began"
    rows = AuditEntry.objects.filter(request_id__in=ids)
    assert sorted(rows.values_list("request_id", flat=True)) == sorted(ids)
    assert {(row.service, row.operation, row.outcome, row.transport) for row in rows} == {
        ("slow", "wait", "success", "mcp")
    }
