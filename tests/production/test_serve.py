"""`make serve` as an operator runs it: a database of its own created on first use, the release
steps, then the Procfile's web, worker and beat through honcho, DEBUG off. A /mcp call reaches
the web process, which asks the worker over the broker; SIGTERM stops every process."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import urllib.request
import uuid

import psycopg
import pytest

from tests.celery_worker import BROKER_DB, _purge_own_keys

from .conftest import ROOT, free_port, wait_for, wait_http

pytestmark = pytest.mark.slow
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def mcp_call(base: str, key: str, name: str, arguments: dict) -> dict:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }
    request = urllib.request.Request(
        base + "/mcp",
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2025-11-25",
            "Authorization": f"Bearer {key}",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - local test server
        return json.loads(response.read())


def started_by_honcho(log) -> dict[str, int]:
    """honcho's "web.1 started (pid=N)" lines: each process's pid, the leader of its group."""
    return {m[0]: int(m[1]) for m in re.findall(r"(\w+)\.1 started \(pid=(\d+)\)", log.read_text())}


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_it_serves_the_procfile_with_honcho_and_stops_it(tmp_path):
    tag = f"askpro-serve-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    database = tag.replace("-", "_")
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        # What the test run set for itself; an operator's shell has none of it.
        if key not in {"DJANGO_SETTINGS_MODULE", "DEBUG", "TEST_DATABASE_NAME", "CACHE_KEY_PREFIX"}
    }
    env.update(
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{database}",
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        CELERY_BROKER_URL=f"redis://127.0.0.1:6379/{BROKER_DB}",
        CACHE_KEY_PREFIX=tag,
        CELERY_KEY_PREFIX=f"{tag}:",
        CELERY_TASK_DEFAULT_QUEUE=f"{tag}-q",
        STATIC_ROOT=str(tmp_path / "static"),
        SERVE_SECRETS_FILE=str(tmp_path / "serve.env"),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
        WEB_CONCURRENCY="1",
        CELERY_WORKER_CONCURRENCY="1",
        PYTHONUNBUFFERED="1",
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["make", "serve", f"PORT={port}"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/health/ready", proc, log, timeout=300)
        wait_for(lambda: " ready." in (t := log.read_text()) and "beat: Starting" in t, timeout=90)
        text = log.read_text()
        assert set(started_by_honcho(log)) == {"web", "worker", "beat"}
        assert f"worker.1@{socket.gethostname()} ready." in text
        assert "Listening at: http://127.0.0.1:" in text and "Using worker: sync" in text
        assert re.search(r"created: webhooks: sweep stuck and due events", text), "setup_periodic_tasks ran"
        # The Procfile's beat runs the scheduler from settings, the one with the one-beat lock.
        wait_for(lambda: "beat lock: taken" in log.read_text(), timeout=60)
        assert (tmp_path / "static" / "staticfiles.json").exists(), "collectstatic ran"
        assert (tmp_path / "serve.env").stat().st_mode & 0o077 == 0, "the secrets file is private"
        assert (tmp_path / "prometheus").is_dir(), "one metrics directory for every process"

        key = subprocess.run(
            [
                "scripts/serve.sh",
                "manage",
                "create_api_key",
                "--platform",
                "--scopes",
                "*",
                "--name",
                "serve",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        reply = mcp_call(base, key, "queue_get_workers", {})
        assert reply["result"]["isError"] is False, reply
        workers = reply["result"]["structuredContent"]["workers"]
        assert [(w["hostname"], w["queues"]) for w in workers] == [
            (f"worker.1@{socket.gethostname()}", [f"{tag}-q"])
        ]
    finally:
        # SIGTERM to make, the script and honcho; honcho stops the processes it started and exits.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=60)
        started = started_by_honcho(log)
        with contextlib.suppress(AssertionError):
            wait_for(lambda: not any(group_alive(pid) for pid in started.values()), timeout=30)
        for pid in [*started.values(), proc.pid]:  # whatever did not stop, by the pids we know
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        proc.wait(timeout=30)
        _purge_own_keys(f"{tag}:", f"{tag}-q")
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    assert not any(group_alive(pid) for pid in started.values())
    stopped = log.read_text()
    for name in ("web", "worker", "beat"):
        assert f"{name}.1 stopped" in stopped
    assert "Handling signal: term" in stopped and "Warm shutdown" in stopped
