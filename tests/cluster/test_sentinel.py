"""Redis Sentinel: a master, a replica and three sentinels on free ports; a web instance whose
cache, rate limiter and breakers reach Redis through the sentinels (REDIS_SENTINELS), and a Celery
worker on a sentinel:// broker. The master is killed by pid under load: calls go on being answered
(fail open for the failover window), then limits are enforced again on the promoted replica with
the counters that were replicated before the crash, and tasks flow through the new master.

The failover window printed here is measured from the first call answered without the limiter
(or failed) to the first normal answer after it (docs/high-availability.md#redis-sentinel).
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from askpro.models import Call
from tests.resilience.dummy_upstream import DummySandbox

from . import group
from .conftest import RETELL_KEY, database_url, processed, retell_delivery, tenant_key
from .group import call, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@dataclass
class HA:
    web: group.Proc
    worker: group.Proc
    sentinels: group.SentinelGroup
    sandbox: DummySandbox
    logs: Path


def sentinel_env(sentinels: group.SentinelGroup, *, database_url: str, queue: str, **extra: str) -> dict:
    return group.base_env(
        database_url=database_url,
        redis_url=None,
        broker_url=sentinels.broker_url(1),
        queue=queue,
        REDIS_SENTINELS=sentinels.sentinels_setting,
        REDIS_SENTINEL_MASTER=sentinels.MASTER,
        # A master that is gone refuses connections at once here; a short timeout also bounds
        # calls to one that hangs instead.
        REDIS_CONNECT_TIMEOUT="0.5",
        REDIS_SOCKET_TIMEOUT="0.5",
        MCP_RESILIENCE_REDIS_RETRY_SECONDS="0.3",
        MCP_RATE_LIMIT_PLAN_CACHE_SECONDS="0",
        MCP_AUDIT_FLUSH_MS="0",
        **extra,
    )


@pytest.fixture(scope="module")
def ha(django_db_setup):
    logs = group.log_dir("askpro-sentinel")
    sandbox = DummySandbox().start()
    sentinels = group.SentinelGroup(logs)
    procs: list[group.Proc] = []
    try:
        sentinels.start()
        queue = f"sentinel-{os.getpid()}"
        env = sentinel_env(
            sentinels,
            database_url=database_url(),
            queue=queue,
            DUMMY_UPSTREAM_URL=sandbox.url,
            CREDENTIALS_ENCRYPTION_KEY=settings.CREDENTIALS_ENCRYPTION_KEY,
            RETELL_API_KEY=RETELL_KEY,
            RETELL_DEFAULT_AGENT_ID="",
        )
        procs = [group.web("ha-web", env, logs), group.worker(f"{queue}-w", env, logs)]
        group.start_all(procs)
        yield HA(procs[0], procs[1], sentinels, sandbox, logs)
    finally:
        group.stop_all(procs)
        sentinels.stop()
        sandbox.stop()
        if os.environ.get("KEEP_CLUSTER_LOGS"):
            print(f"sentinel logs kept in {logs}")
        else:
            for path in logs.iterdir():
                path.unlink(missing_ok=True)
            logs.rmdir()


def failover_window(answers: list[tuple[float, str, int, bool]]) -> float:
    """Seconds from the first abnormal answer (failed, or given without the limiter) to the first
    normal answer after the last abnormal one. Answers are in completion order, so a call that
    passed the limiter just before the failure may complete after it: it does not end the window."""
    normal = [status == 200 and decided for _, _, status, decided in answers]
    assert False in normal, "no call noticed the master's death"
    first_bad = normal.index(False)
    last_bad = len(normal) - 1 - normal[::-1].index(False)
    assert last_bad + 1 < len(normal), "no normal answer after the failover"
    return answers[last_bad + 1][0] - answers[first_bad][0]


def test_it_serves_through_a_sentinel_failover_losing_only_the_window(ha, alice):
    sentinels, base = ha.sentinels, ha.web.base
    old_master, replica = sentinels.master, sentinels.replica
    assert sentinels.master_port() == old_master.port

    # Before: limits through the sentinels' master, tasks through the sentinel broker.
    counted, counted_key = tenant_key("counted", per_minute=10)
    assert [call(base, counted_key)[0] for _ in range(10)] == [200] * 10  # the whole minute's quota
    spent = time.monotonic()
    before = f"call_sentinel_before_{uuid.uuid4().hex[:8]}"
    assert group.post_raw(base, "/webhooks/retell", *retell_delivery(before)) == 202
    assert processed(before).attempts == 1
    # What the master acknowledged has reached the replica (replication is asynchronous: writes
    # of the last instant before a crash can be lost, and that is part of the window).
    assert old_master.client().execute_command("WAIT", 1, 5000) == 1

    _, busy_key = tenant_key("busy")
    with group.Load([base], busy_key, threads=3) as load:
        wait_for(lambda: sum(1 for r in load.since(0) if r[3]) >= 20, 30, "load running")
        killed = time.monotonic()
        old_master.kill()
        wait_for(lambda: sentinels.master_port() == replica.port, 60, "the sentinels promote the replica")
        promoted = time.monotonic()
        wait_for(lambda: sum(1 for r in load.since(promoted) if r[3]) >= 20, 30, "normal answers again")
    answers = load.since(killed)
    window = failover_window(answers)
    print(f"\nsentinel failover: promoted {promoted - killed:.2f}s after the kill; window {window:.2f}s")
    assert {status for _, _, status, _ in answers} == {200}, [r for r in answers if r[2] != 200]
    assert all(decided for *_, decided in answers[-10:])  # and it stays normal

    # After: the counters that reached the replica hold; limits are enforced on the new master.
    # The bucket refills one call every 6 s (10 a minute), so what it lets through now is what
    # refilled since the quota was spent, never a fresh minute's 10 (a lost counter).
    refilled = int((time.monotonic() - spent) / 6) + 1
    statuses = [call(base, counted_key)[0] for _ in range(10)]
    assert 429 in statuses, statuses
    assert statuses.index(429) <= min(refilled, 9), (statuses, refilled)
    new_master = replica.client()
    assert new_master.info("replication")["role"] == "master"
    assert list(new_master.scan_iter(match=f"*rl:r:{counted.pk}:dummy*"))
    # The web instance enqueues through the new master and the worker consumes from it.
    after = f"call_sentinel_after_{uuid.uuid4().hex[:8]}"
    assert group.post_raw(base, "/webhooks/retell", *retell_delivery(after)) == 202
    assert processed(after, timeout=60).attempts == 1
    assert Call.objects.filter(retell_call_id__in=[before, after]).count() == 2
