"""The Procfile's worker process (Celery's prefork pool, the production settings) stopped and killed
in the middle of a task: a stop lets the task finish; a stop that reaches the pool process too
(honcho, or systemd's default KillMode) puts it back in the queue; a killed worker's task runs
again on another worker. Nothing is lost: tasks are acknowledged late (after they ran).

The task is the real webhooks.process_event on a real Redis broker, with a handler that notes
which worker ran each attempt (tests/production/handlers.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis

from askpro.celery import app
from mcp_servers.webhooks.models import WebhookEvent
from mcp_servers.webhooks.services import webhook_enqueue
from tests.celery_worker import BROKER_DB, _purge_own_keys, forget_broker_connections

from .conftest import kill_group, procfile, production_env, start, stop, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
HANDLER = "tests.production.handlers.slow_first_attempt"


class Worker:
    """The Procfile's worker command, named, with one pool process."""

    def __init__(self, name: str, env: dict[str, str], log: Path) -> None:
        self.name, self.env, self.log = name, env, log
        self.proc = start(procfile()["worker"], env={**env, "CELERY_WORKER_NAME": name}, log=log)

    def wait_ready(self) -> Worker:
        hostname = f"{self.name}@{socket.gethostname()}"
        try:
            wait_for(lambda: self._exited() or f"{hostname} ready." in self.log.read_text(), timeout=90)
        except AssertionError:
            raise AssertionError(f"{self.name} not ready:\n{self.log.read_text()[-3000:]}") from None
        assert self.proc.poll() is None, self.log.read_text()[-3000:]
        return self

    def _exited(self) -> bool:
        return self.proc.poll() is not None


@pytest.fixture
def broker(tmp_path):
    """A queue and key prefix of this test's own on the Redis broker; the test process's Celery
    app publishes there. Workers started through `broker.worker(...)` stop at teardown."""
    tag = f"askpro-prod-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    queue, prefix = f"{tag}-q", f"{tag}:"
    url = f"redis://127.0.0.1:6379/{BROKER_DB}"
    keys = ("task_always_eager", "broker_url", "task_default_queue", "broker_transport_options")
    old = {key: app.conf[key] for key in keys}
    app.conf.update(
        task_always_eager=False,
        broker_url=url,
        task_default_queue=queue,
        broker_transport_options={"global_keyprefix": prefix},
    )
    forget_broker_connections()
    workers: list[Worker] = []

    def worker(name: str, *, visibility_timeout: int = 3600) -> Worker:
        env = production_env(
            # The production settings plus test handlers and a quick redelivery sweep.
            DJANGO_SETTINGS_MODULE="tests.worker_settings",
            CELERY_BROKER_URL=url,
            CELERY_TASK_ALWAYS_EAGER="0",
            CELERY_TASK_DEFAULT_QUEUE=queue,
            CELERY_KEY_PREFIX=prefix,
            CELERY_VISIBILITY_TIMEOUT=str(visibility_timeout),
            CELERY_WORKER_CONCURRENCY="1",
            WEBHOOK_LEASE_SECONDS="2",
            TEST_WEBHOOK_HANDLERS=json.dumps({"retell": HANDLER}),
            LOG_LEVEL="INFO",
        )
        started = Worker(f"{tag}-{name}", env, tmp_path / f"worker-{name}.log")
        workers.append(started)
        return started

    redis_client = redis.Redis.from_url(url)
    try:
        yield SimpleNamespace(worker=worker, redis=redis_client)
    finally:
        for started in workers:
            stop(started.proc, timeout=30)
        _purge_own_keys(prefix, queue)
        app.conf.update(**old)
        forget_broker_connections()


def deliver(r: redis.Redis, *, sleep: float) -> tuple[WebhookEvent, str]:
    """A stored webhook event handed to Celery, the way ingestion does after its commit."""
    key = f"prodtest-{uuid.uuid4().hex}"
    event = WebhookEvent.objects.create(
        provider="retell",
        event_id=key,
        idempotency_key=f"test:{key}",
        type="call_started",
        payload={"test_key": key, "sleep": sleep},
    )
    webhook_enqueue(event.pk)
    return event, key


def ran_by(r: redis.Redis, key: str, attempt: int) -> int | None:
    value = r.get(f"{key}:worker:{attempt}")
    return int(value) if value else None


def processed(event: WebhookEvent, timeout: float = 90) -> WebhookEvent:
    return wait_for(
        lambda: WebhookEvent.objects.filter(pk=event.pk, status=WebhookEvent.Status.PROCESSED).first(),
        timeout=timeout,
    )


def test_it_finishes_the_running_task_when_a_worker_is_told_to_stop(broker):
    a = broker.worker("a").wait_ready()
    first, first_key = deliver(broker.redis, sleep=4)
    assert wait_for(lambda: ran_by(broker.redis, first_key, 1)) == a.proc.pid
    second, second_key = deliver(broker.redis, sleep=0)  # waits: a's one pool process is busy

    a.proc.send_signal(signal.SIGTERM)  # the main process only, as systemd's KillMode=mixed does
    b = broker.worker("b")  # starts meanwhile; a takes nothing new once told to stop
    assert a.proc.wait(timeout=60) == 0
    first.refresh_from_db()
    assert (first.status, first.attempts) == (WebhookEvent.Status.PROCESSED, 1)
    assert int(broker.redis.get(f"{first_key}:completed")) == 1
    assert "Warm shutdown" in a.log.read_text()

    # The task it had not started stayed in the queue, for the next worker.
    b.wait_ready()
    assert processed(second).attempts == 1
    assert ran_by(broker.redis, second_key, 1) == b.proc.pid


def test_it_puts_the_task_back_when_the_stop_also_reaches_the_pool_process(broker):
    a, b = broker.worker("a"), broker.worker("b")
    a.wait_ready(), b.wait_ready()
    event, key = deliver(broker.redis, sleep=60)
    runner_pid = wait_for(lambda: ran_by(broker.redis, key, 1))
    runner, survivor = (a, b) if runner_pid == a.proc.pid else (b, a)

    # honcho (make serve) and systemd's default KillMode signal every process of the group: the
    # pool process dies mid-task. The message was never acknowledged and is rejected back to the
    # queue (reject_on_worker_lost) at once, not after the hour-long visibility timeout.
    os.killpg(runner.proc.pid, signal.SIGTERM)
    runner.proc.wait(timeout=60)
    done = processed(event, timeout=60)
    assert done.attempts == 2
    assert ran_by(broker.redis, key, 2) == survivor.proc.pid
    assert int(broker.redis.get(f"{key}:completed")) == 1, "the stopped attempt never completed"


def test_it_runs_a_killed_workers_task_again_on_another_worker(broker):
    a = broker.worker("a", visibility_timeout=3)
    b = broker.worker("b", visibility_timeout=3)
    a.wait_ready(), b.wait_ready()
    event, key = deliver(broker.redis, sleep=60)
    runner_pid = wait_for(lambda: ran_by(broker.redis, key, 1))
    runner, survivor = (a, b) if runner_pid == a.proc.pid else (b, a)

    kill_group(runner.proc)  # SIGKILL to the worker and its pool process: a lost machine
    done = processed(event)
    assert done.attempts == 2
    assert ran_by(broker.redis, key, 2) == survivor.proc.pid
    assert int(broker.redis.get(f"{key}:completed")) == 1, "the killed attempt never completed"
