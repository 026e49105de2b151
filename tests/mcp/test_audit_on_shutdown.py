"""A production-style server with batched recording (the default): every /mcp call's audit row
and metric are in the database once the server has stopped gracefully, though none had been
written while it ran."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from django.db.models import Sum

from mcp_core.models import AuditEntry, MetricRollup
from tests.mcp.conftest import ROOT, child_env, free_port
from tests.mcp.helpers import LEGACY, modern_meta

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CALLS = 40


def _start(port: int, env: dict[str, str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "gunicorn", "askpro.wsgi:application", "--bind", f"127.0.0.1:{port}",
               "--workers", "2", "--graceful-timeout", "20"]  # fmt: skip
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/mcp", timeout=1)  # noqa: S310 - local server
        except urllib.error.HTTPError as exc:
            if exc.code == 405:
                return proc
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    raise RuntimeError(f"gunicorn did not start: {proc.stderr.read().decode()[-2000:]}")


def _call(port: int, key: str, request_id: str) -> dict:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "database_get_tenant_stats", "arguments": {}}}  # fmt: skip
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/mcp",
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": LEGACY,
            "Authorization": f"Bearer {key}",
            "X-Request-ID": request_id,
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - local server
        return json.loads(response.read())


def test_it_writes_every_queued_row_when_the_server_stops(alice, alice_key):
    port = free_port()
    # Batched, with an interval no test waits for: only the graceful stop can write the rows.
    env = child_env(MCP_AUDIT_FLUSH_MS="600000", MCP_AUTH_CACHE_SECONDS="2")
    proc = _start(port, env)
    try:
        ids = [f"shutdown-{n}" for n in range(CALLS)]
        for request_id in ids:
            assert _call(port, alice_key, request_id)["result"]["isError"] is False
        assert AuditEntry.objects.filter(request_id__in=ids).count() == 0  # queued, not yet written
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    written = AuditEntry.objects.filter(request_id__in=ids)
    assert written.count() == CALLS
    assert set(written.values_list("tenant_id", flat=True)) == {alice.pk}
    calls = MetricRollup.objects.filter(operation="get_tenant_stats").aggregate(n=Sum("calls"))["n"]
    assert calls == CALLS


def test_it_writes_mcp_stdios_queued_rows_when_the_client_stops_it(alice, alice_key):
    env = child_env(MCP_AUDIT_FLUSH_MS="600000", MCP_API_KEY=alice_key)
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "mcp_stdio"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                "params": {"name": "database_get_tenant_stats", "arguments": {},
                           "_meta": modern_meta()}}  # fmt: skip
        proc.stdin.write(json.dumps(call) + "\n")
        proc.stdin.flush()
        reply = json.loads(proc.stdout.readline())
        assert reply["id"] == 7 and reply["result"]["isError"] is False
        assert not AuditEntry.objects.filter(transport="mcp", tenant_id=alice.pk).exists()  # queued
    finally:
        proc.send_signal(signal.SIGTERM)  # stdin stays open: the client stops it by signal
        proc.wait(timeout=30)
    assert AuditEntry.objects.filter(transport="mcp", tenant_id=alice.pk).count() == 1
