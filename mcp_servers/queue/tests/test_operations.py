"""The queue server's operations against a real Celery worker on the Redis broker."""

from __future__ import annotations

import pytest

from mcp_servers.queue.models import TaskFailure, TaskRunRollup
from mcp_servers.queue.tasks import canary
from tests.celery_worker import wait_for

from .conftest import call_server

pytestmark = pytest.mark.slow


@pytest.mark.django_db(transaction=True)
def test_it_reads_depths_from_the_broker_and_says_when_no_worker_answers(celery_worker_factory, platform_key):
    queue = celery_worker_factory.queue
    for _ in range(3):
        canary.delay()
    overview = call_server(platform_key, "get_overview")
    assert overview.success, overview.error
    depths = {q["name"]: q["depth"] for q in overview.data["queues"]}
    assert depths[queue] == 3
    assert overview.data["broker"] == "redis" and overview.data["workers"] == []
    assert overview.data["worker_status"].startswith("no worker answered within")
    workers = call_server(platform_key, "get_workers")
    assert workers.data == {"workers": [], "status": workers.data["status"]}
    assert "no worker answered" in workers.data["status"]

    purge = call_server(platform_key, "purge_queue", {"queue": queue})
    assert purge.error["code"] == "validation_error" and purge.error["details"]["field"] == "confirm"
    purge = call_server(platform_key, "purge_queue", {"queue": queue, "confirm": True})
    assert purge.data == {"queue": queue, "purged": 3}
    assert {q["name"]: q["depth"] for q in call_server(platform_key, "get_overview").data["queues"]}[
        queue
    ] == 0
    other = call_server(platform_key, "purge_queue", {"queue": "somebody-elses-queue", "confirm": True})
    assert other.error["code"] == "not_found"


@pytest.mark.django_db(transaction=True)
def test_it_shows_workers_running_tasks_failures_retries_and_metrics(celery_worker_factory, platform_key):
    worker = celery_worker_factory().start()
    canary.delay(sleep_s=3)
    overview = wait_for(lambda: (r := call_server(platform_key, "get_overview")).data["active"] and r)
    assert overview.data["workers"] == [worker.hostname]
    assert overview.data["active"][0]["name"] == "queue.canary"
    assert overview.data["worker_status"] == "1 worker(s) answered"

    workers = call_server(platform_key, "get_workers").data["workers"]
    assert workers[0]["hostname"] == worker.hostname and workers[0]["pid"] == worker.proc.pid
    assert workers[0]["queues"] == [celery_worker_factory.queue]

    failing = canary.delay(fail=True)
    failure = wait_for(lambda: TaskFailure.objects.filter(task_id=failing.id).first())
    assert failure.exception_type == "CanaryFailure" and failure.kwargs == {"fail": True}
    assert failure.worker == worker.hostname and "canary asked to fail" in failure.traceback
    listed = call_server(platform_key, "get_failed_tasks").data
    assert [f["task_id"] for f in listed["failures"]] == [failing.id]
    detail = call_server(platform_key, "get_task", {"task_id": failing.id}).data
    assert detail["failures"][0]["exception_type"] == "CanaryFailure" and detail["live_state"] is None

    retried = call_server(platform_key, "retry_task", {"task_id": failing.id}).data
    assert retried["already_retried"] is False and retried["task_name"] == "queue.canary"
    again = call_server(platform_key, "retry_task", {"task_id": failing.id}).data
    assert again == {**retried, "already_retried": True}
    wait_for(lambda: TaskFailure.objects.filter(task_id=retried["new_task_id"]).exists())

    wait_for(lambda: TaskRunRollup.objects.filter(task_name="queue.canary", state="SUCCESS").exists())
    metrics = {
        t["task_name"]: t for t in call_server(platform_key, "get_metrics", {"period": "hour"}).data["tasks"]
    }
    canary_metrics = metrics["queue.canary"]
    assert (canary_metrics["succeeded"], canary_metrics["failed"]) == (1, 2)
    assert canary_metrics["max_runtime_ms"] >= 2900
