"""Several machines, one system: two web instances (gunicorn), two Celery workers and one beat,
each a process group of its own on its own port, sharing this run's PostgreSQL test database, a
private Redis (cache, limiter and breaker state) and a broker (that Redis's db 1). Started once
for the module; the tests run in file order, the last ones restart or kill parts of it.

docs/high-availability.md describes what each test shows.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from askpro.models import Call
from conftest import make_tenant
from mcp_core.api_keys import api_key_create
from mcp_core.models import ApiKey, AuditEntry
from tests.resilience.conftest import FAST_BREAKER
from tests.resilience.dummy_upstream import DummySandbox

from . import group
from .conftest import RETELL_KEY, database_url, processed, retell_delivery, tenant_key, unique_phone
from .group import call, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

AUTH_WINDOW = 2.0  # MCP_AUTH_CACHE_SECONDS of the web instances (the production default)
RABBITMQ = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
BREAKERS = {"default": {**FAST_BREAKER, "open_duration": 30.0}}


@dataclass
class Cluster:
    webs: list[group.Proc]
    workers: list[group.Proc]
    beat: group.Proc
    redis: group.RedisServer
    sandbox: DummySandbox
    env: dict[str, str]
    logs: Path
    extra: list[group.Proc] = field(default_factory=list)

    @property
    def bases(self) -> list[str]:
        return [web.base for web in self.webs]  # type: ignore[attr-defined]

    def tails(self) -> str:
        return "\n".join(proc.tail(1500) for proc in [*self.webs, *self.workers, self.beat, *self.extra])


@pytest.fixture(scope="module")
def cluster(django_db_setup):
    logs = group.log_dir("askpro-cluster")
    sandbox = DummySandbox().start()
    redis = group.RedisServer(logs).start()
    queue = f"cluster-{os.getpid()}"
    env = group.base_env(
        database_url=database_url(),
        redis_url=redis.url(0),
        broker_url=redis.url(1),
        queue=queue,
        DUMMY_UPSTREAM_URL=sandbox.url,
        TEST_MCP_BREAKERS=json.dumps(BREAKERS),
        MCP_AUTH_CACHE_SECONDS=str(AUTH_WINDOW),
        MCP_RESILIENCE_REDIS_RETRY_SECONDS="0.3",
        MCP_RATE_LIMIT_PLAN_CACHE_SECONDS="0",
        CREDENTIALS_ENCRYPTION_KEY=settings.CREDENTIALS_ENCRYPTION_KEY,
        RETELL_API_KEY=RETELL_KEY,
        RETELL_DEFAULT_AGENT_ID="",
        # Audit rows written before each answer: a batch written after a test would race the
        # TRUNCATE that ends it (a deadlock on the foreign keys), not something production sees.
        MCP_AUDIT_FLUSH_MS="0",
    )
    webs = [group.web(f"web{i}", env, logs) for i in (1, 2)]
    workers = [group.worker(f"{queue}-w{i}", env, logs) for i in (1, 2)]
    beat = group.beat("beat1", env, logs)
    state = Cluster(webs, workers, beat, redis, sandbox, env, logs)
    try:
        group.start_all([*webs, *workers, beat])
        yield state
    finally:
        group.stop_all([*state.webs, *state.workers, state.beat, *state.extra])
        state.redis.kill()
        sandbox.stop()
        if os.environ.get("KEEP_CLUSTER_LOGS"):
            print(f"cluster logs kept in {logs}")
        else:
            for path in logs.iterdir():
                path.unlink(missing_ok=True)
            logs.rmdir()


@pytest.fixture(autouse=True)
def _clean_sandbox(cluster):
    cluster.sandbox.clear_faults()
    with cluster.sandbox.lock:
        cluster.sandbox.request_log.clear()


def spread(bases: list[str], key: str, count: int) -> list[tuple[str, int, dict, dict]]:
    """`count` calls at once, alternating between the instances: (base, status, headers, body)."""

    def one(i: int):
        base = bases[i % len(bases)]
        return (base, *call(base, key))

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def forget_breaker(cluster: Cluster) -> None:
    client = cluster.redis.client()
    keys = list(client.scan_iter(match="*br:dummy*"))
    if keys:
        client.delete(*keys)


# --- one system: limits, breakers, keys, webhooks ---------------------------------------------


def test_it_holds_a_tenants_limit_exactly_across_both_instances(cluster):
    tenant, key = tenant_key("limit", per_minute=10)
    results = spread(cluster.bases, key, 40)
    statuses = [status for _, status, _, _ in results]
    assert statuses.count(200) == 10, statuses
    assert statuses.count(429) == 30
    assert len(cluster.sandbox.request_log) == 10  # only the allowed calls reached the upstream
    # Each instance refused some: with per-instance state each would have let 10 through.
    assert {base for base, status, _, _ in results if status == 429} == set(cluster.bases)
    assert all(
        h["RateLimit-Policy"] == f'"limit-{tenant.pk}";q=10;w=60' for _, s, h, _ in results if s == 429
    )


def test_it_fails_fast_on_one_instance_once_a_breaker_opened_through_the_other(cluster):
    open_through_one_fail_fast_on_the_other(cluster)


def open_through_one_fail_fast_on_the_other(cluster: Cluster) -> None:
    forget_breaker(cluster)  # the window counts every tenant's calls; start from none
    _, key = tenant_key("breaker")
    first, second = cluster.bases
    cluster.sandbox.inject_fault(status=500, path="/items/")
    try:
        for _ in range(FAST_BREAKER["minimum_calls"]):
            status, _, body = call(first, key)
            assert (status, body["error"]["code"]) == (502, "upstream_error")
        seen = len(cluster.sandbox.request_log)
        status, headers, body = call(second, key)
        assert (status, body["error"]["code"]) == (503, "circuit_open")
        assert int(headers["Retry-After"]) >= 1
        assert len(cluster.sandbox.request_log) == seen  # the second instance never called upstream
    finally:
        forget_breaker(cluster)


def test_it_refuses_a_revoked_key_on_both_instances_within_the_auth_cache_window(cluster):
    tenant = make_tenant(f"revoke-{uuid.uuid4().hex[:6]}", phone=unique_phone())
    api_key, raw = api_key_create(name="to revoke", scopes=["*"], tenant=tenant)
    for base in cluster.bases:  # each instance now remembers the key (MCP_AUTH_CACHE_SECONDS)
        assert call(base, raw)[0] == 200
    ApiKey.objects.filter(pk=api_key.pk).update(revoked_at=timezone.now())
    revoked = time.monotonic()

    def refused_after(base: str) -> float:
        wait_for(lambda: call(base, raw)[0] == 401, AUTH_WINDOW + 10, f"{base} refuses the revoked key")
        return time.monotonic() - revoked

    with ThreadPoolExecutor(max_workers=2) as pool:
        delays = list(pool.map(refused_after, cluster.bases))
    # The documented bound is the window; the margin covers one polling round on a busy machine.
    assert max(delays) <= AUTH_WINDOW + 1.5, delays
    assert [call(base, raw)[0] for base in cluster.bases] == [401, 401]


def test_it_processes_once_the_same_webhook_delivered_to_both_instances_at_once(cluster, alice):
    call_id = f"call_cluster_{uuid.uuid4().hex[:10]}"
    body, headers = retell_delivery(call_id)
    start = threading.Barrier(8)

    def deliver(i: int) -> int:
        start.wait()
        return group.post_raw(cluster.bases[i % 2], "/webhooks/retell", body, headers)

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(deliver, range(8)))
    assert statuses == [200] * 7 + [202], statuses  # one stored, seven counted as duplicates
    event = processed(call_id)
    assert (event.attempts, event.duplicate_count) == (1, 7)
    assert Call.objects.filter(retell_call_id=call_id).count() == 1


def test_it_runs_a_worker_on_rabbitmq_with_quorum_queues(cluster):
    """The broker for larger installations: a worker of this group on RabbitMQ with quorum
    queues (CELERY_TASK_DEFAULT_QUEUE_TYPE=quorum), a task and a delayed one (countdown, as the
    webhook retries use) recorded in the group's Redis. The test's queue and exchange are deleted
    afterwards; Celery's shared delayed-delivery queues (celery_delayed_*) stay, as for any worker."""
    from celery import Celery
    from kombu import Connection

    try:
        with Connection(RABBITMQ, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(
            f"RabbitMQ is not reachable (TEST_RABBITMQ_URL, {type(exc).__name__}); ensure_services.sh starts it"
        )
    queue = f"cluster-amqp-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    env = {
        **cluster.env,
        "CELERY_BROKER_URL": RABBITMQ,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "CELERY_TASK_DEFAULT_QUEUE_TYPE": "quorum",
    }
    worker = group.worker(f"{queue}-w", env, cluster.logs)
    cluster.extra.append(worker)
    # A producer configured as the settings configure one for quorum queues.
    # Not the current app: the rest of the run keeps using askpro.celery.app.
    producer = Celery("cluster-probe", broker=RABBITMQ, set_as_current=False)
    producer.conf.update(
        task_default_queue=queue,
        task_default_queue_type="quorum",
        task_create_missing_queue_type="quorum",
        task_default_exchange_type="topic",
        broker_transport_options={"confirm_publish": True},
    )
    try:
        group.start_all([worker])
        runs_key = f"amqp-runs-{uuid.uuid4().hex[:8]}"
        sent = time.time()
        producer.send_task("cluster.record", args=[runs_key], queue=queue)
        producer.send_task("cluster.record", args=[runs_key], queue=queue, countdown=2)
        redis = cluster.redis.client()
        wait_for(lambda: redis.llen(runs_key) == 2, 40, "both tasks run by the RabbitMQ worker")
        runs = [json.loads(item) for item in redis.lrange(runs_key, 0, -1)]
        assert all(run["worker"].startswith(f"{queue}-w@") for run in runs)
        assert runs[1]["at"] - sent >= 2  # the delayed one waited in RabbitMQ, not in the worker
        with Connection(RABBITMQ, connect_timeout=5) as conn, pytest.raises(Exception, match="x-queue-type"):
            # The queue exists as a quorum queue: declaring it classic is refused.
            conn.default_channel.queue_declare(
                queue, durable=True, auto_delete=False, arguments={"x-queue-type": "classic"}
            )
    finally:
        worker.stop()
        producer.close()
        with Connection(RABBITMQ, connect_timeout=5) as conn:
            conn.default_channel.queue_delete(queue)
            conn.default_channel.exchange_delete(queue)


# --- parts failing: PostgreSQL connections, Redis ------------------------------------------------


def test_it_recovers_the_pools_when_the_database_drops_every_connection(cluster, alice):
    _, key = tenant_key("pgdrop")
    assert {s for _, s, _, _ in spread(cluster.bases, key, 16)} == {200}  # every pool holds connections
    taken = cluster.beat.output().count("beat lock: taken")
    connection.close()  # this test's own connection goes back to the pool, to be dropped too
    name = connection.settings_dict["NAME"]
    admin = database_url().replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        # Only this run's test database, never another database's backends; each one gone (the
        # call waits up to 5 s for it) before the next call, as after a database restart.
        dropped = conn.execute(
            "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        ).fetchone()[0]
    assert dropped >= 6  # two web pools, two workers, the beat and its lock, this process

    results = [call(cluster.bases[i % 2], key) for i in range(20)]
    assert [status for status, _, _ in results] == [200] * 20, [b for s, _, b in results if s != 200]
    request_ids = {body["metadata"]["request_id"] for _, _, body in results}
    assert AuditEntry.objects.filter(request_id__in=request_ids).count() == 20
    # The beat lost its lock with its connection and takes it again; the workers still process.
    group.wait_log(cluster.beat, "beat lock: taken", timeout=30, count=taken + 1)
    call_id = f"call_pgdrop_{uuid.uuid4().hex[:10]}"
    body, headers = retell_delivery(call_id)
    assert group.post_raw(cluster.bases[0], "/webhooks/retell", body, headers) == 202
    assert processed(call_id).attempts == 1


def test_it_answers_calls_through_a_redis_restart_and_recovers_limits_and_breakers(cluster, alice):
    _, busy_key = tenant_key("busy")
    with group.Load(cluster.bases, busy_key) as load:
        wait_for(lambda: len(load.since(0)) >= 20, 30, "load running")
        killed = time.monotonic()
        cluster.redis.kill()
        wait_for(
            lambda: sum(1 for r in load.since(killed) if not r[3]) >= 10, 20, "calls answered without Redis"
        )
        cluster.redis = cluster.redis.restarted()
        restarted = time.monotonic()

        def limiter_back_on_both() -> bool:
            return {base for _, base, status, decided in load.since(restarted) if decided} == set(
                cluster.bases
            )

        wait_for(limiter_back_on_both, 20, "both instances deciding limits again")
    answers = load.since(killed)
    assert {status for _, _, status, _ in answers} == {200}, [r for r in answers if r[2] != 200]
    assert any(not decided for *_, decided in answers)  # answered while Redis was away: fail open

    # Limits and breakers work again, shared through the restarted (empty) Redis.
    _, key = tenant_key("after-restart", per_minute=5)
    statuses = [status for _, status, _, _ in spread(cluster.bases, key, 16)]
    assert (statuses.count(200), statuses.count(429)) == (5, 11), statuses
    open_through_one_fail_fast_on_the_other(cluster)
    # The workers reconnected to the restarted broker.
    call_id = f"call_redis_{uuid.uuid4().hex[:10]}"
    body, headers = retell_delivery(call_id)
    assert group.post_raw(cluster.bases[1], "/webhooks/retell", body, headers) == 202
    assert processed(call_id, timeout=60).attempts == 1


# --- one beat ------------------------------------------------------------------------------------


def beat_pid(origin: str) -> int:
    return int(origin.split("@", 1)[0].removeprefix("gen"))


def test_it_keeps_a_second_beat_on_standby_until_the_first_dies(cluster):
    runs_key = f"beat-runs-{uuid.uuid4().hex[:8]}"
    every = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(
        name="cluster tick", task="cluster.record", interval=every, args=json.dumps([runs_key])
    )
    redis = cluster.redis.client()

    def runs() -> list[dict]:
        return [json.loads(item) for item in redis.lrange(runs_key, 0, -1)]

    first = cluster.beat
    second = group.beat("beat2", cluster.env, cluster.logs)
    cluster.extra.append(second)
    try:
        second.start()
        check_one_beat_at_a_time(first, second, runs)
    finally:
        # Before the test's TRUNCATE: a beat writing last_run_at meanwhile could deadlock with it.
        group.stop_all([first, second])


def check_one_beat_at_a_time(first: group.Proc, second: group.Proc, runs) -> None:
    group.wait_log(second, "beat: Starting...")
    both_up = time.time()
    # Both beats run for a while; the task is dispatched once a second by one of them.
    wait_for(lambda: sum(1 for r in runs() if r["at"] > both_up + 1) >= 4, 40, "four runs with both beats up")
    window = [r for r in runs() if r["at"] > both_up]
    assert {beat_pid(r["origin"]) for r in window} == {first.pid}, window
    assert "beat lock: taken" not in second.output()
    span = window[-1]["at"] - window[0]["at"]
    assert len(window) <= span + 2  # not twice a second

    first.kill()  # SIGKILL: its connection, and with it the lock, goes at once
    died = time.time()

    def by_second() -> list[dict]:
        return [r for r in runs() if beat_pid(r["origin"]) == second.pid]

    wait_for(lambda: len(by_second()) >= 3, 30, "the standby beat dispatching")
    assert "beat lock: taken" in second.output()
    taken_over = by_second()
    assert min(r["at"] for r in taken_over) > died  # it waited for the lock
    assert len(taken_over) <= taken_over[-1]["at"] - taken_over[0]["at"] + 2
