"""The queue server against a real Celery worker on the Redis broker."""

from __future__ import annotations

import time

import pytest

from mcp_core.api_keys import api_key_authenticate
from mcp_core.pipeline import call_operation
from mcp_servers.queue.models import TaskFailure, TaskRunRollup
from mcp_servers.queue.tasks import canary

from .celery_worker import forget_broker_connections, wait_for

pytestmark = pytest.mark.slow


def _call(key, operation, params=None):
    return call_operation("queue", operation, params or {}, principal=api_key_authenticate(key))


@pytest.mark.django_db(transaction=True)
def test_it_reads_depths_from_the_broker_and_says_when_no_worker_answers(celery_worker_factory, platform_key):
    queue = celery_worker_factory.queue
    for _ in range(3):
        canary.delay()
    overview = _call(platform_key, "get_overview")
    assert overview.success, overview.error
    depths = {q["name"]: q["depth"] for q in overview.data["queues"]}
    assert depths[queue] == 3
    assert overview.data["broker"] == "redis" and overview.data["workers"] == []
    assert overview.data["worker_status"].startswith("no worker answered within")
    workers = _call(platform_key, "get_workers")
    assert workers.data == {"workers": [], "status": workers.data["status"]}
    assert "no worker answered" in workers.data["status"]

    purge = _call(platform_key, "purge_queue", {"queue": queue})
    assert purge.error["code"] == "validation_error" and purge.error["details"]["field"] == "confirm"
    purge = _call(platform_key, "purge_queue", {"queue": queue, "confirm": True})
    assert purge.data == {"queue": queue, "purged": 3}
    assert {q["name"]: q["depth"] for q in _call(platform_key, "get_overview").data["queues"]}[queue] == 0
    other = _call(platform_key, "purge_queue", {"queue": "somebody-elses-queue", "confirm": True})
    assert other.error["code"] == "not_found"


@pytest.mark.django_db(transaction=True)
def test_it_shows_workers_running_tasks_failures_retries_and_metrics(celery_worker_factory, platform_key):
    worker = celery_worker_factory().start()
    canary.delay(sleep_s=3)
    overview = wait_for(lambda: (r := _call(platform_key, "get_overview")).data["active"] and r)
    assert overview.data["workers"] == [worker.hostname]
    assert overview.data["active"][0]["name"] == "queue.canary"
    assert overview.data["worker_status"] == "1 worker(s) answered"

    workers = _call(platform_key, "get_workers").data["workers"]
    assert workers[0]["hostname"] == worker.hostname and workers[0]["pid"] == worker.proc.pid
    assert workers[0]["queues"] == [celery_worker_factory.queue]

    failing = canary.delay(fail=True)
    failure = wait_for(lambda: TaskFailure.objects.filter(task_id=failing.id).first())
    assert failure.exception_type == "CanaryFailure" and failure.kwargs == {"fail": True}
    assert failure.worker == worker.hostname and "canary asked to fail" in failure.traceback
    listed = _call(platform_key, "get_failed_tasks").data
    assert [f["task_id"] for f in listed["failures"]] == [failing.id]
    detail = _call(platform_key, "get_task", {"task_id": failing.id}).data
    assert detail["failures"][0]["exception_type"] == "CanaryFailure" and detail["live_state"] is None

    retried = _call(platform_key, "retry_task", {"task_id": failing.id}).data
    assert retried["already_retried"] is False and retried["task_name"] == "queue.canary"
    again = _call(platform_key, "retry_task", {"task_id": failing.id}).data
    assert again == {**retried, "already_retried": True}
    wait_for(lambda: TaskFailure.objects.filter(task_id=retried["new_task_id"]).exists())

    wait_for(lambda: TaskRunRollup.objects.filter(task_name="queue.canary", state="SUCCESS").exists())
    metrics = {
        t["task_name"]: t for t in _call(platform_key, "get_metrics", {"period": "hour"}).data["tasks"]
    }
    canary_metrics = metrics["queue.canary"]
    assert (canary_metrics["succeeded"], canary_metrics["failed"]) == (1, 2)
    assert canary_metrics["max_runtime_ms"] >= 2900


@pytest.mark.django_db
def test_tenant_keys_cannot_use_the_queue_server(alice_key):
    response = _call(alice_key, "get_failed_tasks")
    assert response.error["code"] == "forbidden"


@pytest.mark.django_db
def test_without_a_broker_it_says_so(platform_key):
    response = _call(platform_key, "get_overview")
    assert response.error["code"] == "not_configured" and "CELERY_BROKER_URL" in response.error["message"]


@pytest.mark.django_db
def test_an_unreachable_broker_is_an_upstream_error_within_the_deadline(platform_key):
    from askpro.celery import app

    old = {k: app.conf[k] for k in ("task_always_eager", "broker_url")}
    app.conf.update(task_always_eager=False, broker_url="redis://127.0.0.1:1/0")  # nothing listens
    try:
        for operation in ("get_overview", "get_workers"):
            started = time.monotonic()
            response = _call(platform_key, operation)
            assert response.error["code"] == "upstream_error", operation
            assert "unreachable" in response.error["message"]
            assert time.monotonic() - started < 5
    finally:
        app.conf.update(**old)
        forget_broker_connections()
