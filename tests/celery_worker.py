"""A real Celery worker for tests: `celery -A askpro worker` as a subprocess on the Redis
broker, with a queue name and key prefix unique to the test run (nobody else's queues are
ever read or purged), pointed at the test database. Stopped (or killed) by pid.

The test process's own Celery app is switched to the same broker, queue and prefix for the
duration, so that `.delay()` in the code under test reaches that worker."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import kombu.pools
import pytest
from django.db import connection

from askpro.celery import app

ROOT = Path(__file__).resolve().parents[1]
BROKER_DB = int(os.environ.get("TEST_CELERY_REDIS_DB", "0"))


class Worker:
    def __init__(self, *, tag: str, env: dict[str, str]) -> None:
        self.tag = tag
        self.hostname = f"{tag}@{socket.gethostname()}"
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.log = Path(f"/tmp/{tag}.log")

    def start(self, *, wait: bool = True) -> Worker:
        cmd = [
            str(ROOT / ".venv/bin/celery"),
            "-A",
            "askpro",
            "worker",
            "-P",
            "threads",
            "-c",
            "2",
            "-Q",
            self.env["CELERY_TASK_DEFAULT_QUEUE"],
            "-n",
            f"{self.tag}@%h",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "INFO",
        ]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, env=self.env, stdout=out, stderr=out, start_new_session=True
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 40.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"worker exited ({self.proc.returncode}); log:\n{self.log.read_text()[-3000:]}"
                )
            if app.control.ping(destination=[self.hostname], timeout=0.5):
                return
        raise RuntimeError(f"worker did not answer within {timeout}s; log:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL if it lingers; by pid, the worker only."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: the worker dies mid-task without acknowledging anything."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def _database_url() -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.fixture
def celery_worker_factory(transactional_db, settings):
    """Yields make(**env_overrides) -> Worker (not started). Everything stops at teardown."""
    tag = f"askpro-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    queue, prefix = f"{tag}-q", f"{tag}:"
    broker = f"redis://127.0.0.1:6379/{BROKER_DB}"
    transport = {"global_keyprefix": prefix, "visibility_timeout": 3}
    old = {
        key: app.conf[key]
        for key in ("task_always_eager", "broker_url", "task_default_queue", "broker_transport_options")
    }
    app.conf.update(
        task_always_eager=False,
        broker_url=broker,
        task_default_queue=queue,
        broker_transport_options=transport,
    )
    _reset_app()
    workers: list[Worker] = []
    base_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.worker_settings",
        "DEBUG": "1",
        "DATABASE_URL": _database_url(),
        "DB_POOL": "0",
        "CELERY_BROKER_URL": broker,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "CELERY_KEY_PREFIX": prefix,
        "CELERY_VISIBILITY_TIMEOUT": "3",
        "WEBHOOK_LEASE_SECONDS": "2",
        "WEBHOOK_RETRY_BASE_SECONDS": "0.2",
        "PYTHONPATH": str(ROOT),
    }

    def make(*, handlers: dict[str, str] | None = None, **env: str) -> Worker:
        worker_env = {**base_env, "TEST_WEBHOOK_HANDLERS": json.dumps(handlers or {}), **env}
        worker = Worker(tag=f"{tag}-{len(workers)}", env=worker_env)
        workers.append(worker)
        return worker

    make.queue = queue  # type: ignore[attr-defined]
    make.prefix = prefix  # type: ignore[attr-defined]
    try:
        yield make
    finally:
        for worker in workers:
            worker.stop()
            if not os.environ.get("KEEP_WORKER_LOGS"):
                worker.log.unlink(missing_ok=True)
        _purge_own_keys(prefix, queue)
        app.conf.update(**old)
        _reset_app()
        sys.stdout.flush()


def _reset_app() -> None:
    """Forget connections and routing built from the previous configuration."""
    forget_broker_connections()


def forget_broker_connections() -> None:
    """Close and forget every broker connection and producer pool.

    Celery takes its pools from kombu's process-wide registry, keyed by broker URL: closing
    only the app's pool would leave that closed pool registered, and the next test using
    the same URL would get "Acquire on closed pool". kombu.pools.reset() closes and clears
    the registry; the app then builds fresh pools (and routing, a cached app.amqp) on demand.
    """
    kombu.pools.reset()
    app._pool = None
    app.__dict__.pop("amqp", None)


def _purge_own_keys(prefix: str, queue: str) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=BROKER_DB)
    keys = list(client.scan_iter(match=f"{prefix}*", count=500))
    if keys:
        client.delete(*keys)


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
