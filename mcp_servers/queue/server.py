"""The queue server: Celery queues, workers, failures and throughput (platform operators only).

Queue depths are read from the Redis broker itself; workers answer a broadcast (ping, then
stats/active/reserved/scheduled with a short timeout). Failures and run metrics come from the
queue app's own tables, written by Celery signals in the workers as tasks run.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec
from django.db.models import Max, Sum
from django.utils import timezone
from kombu.exceptions import OperationalError

from mcp_core.contracts import ErrorCode, MCPError, OperationContext
from mcp_core.health import HealthResult, HealthStatus
from mcp_core.schemas import NoParams, Params, Result
from mcp_core.server import MCPServer, ServerGauge, operation

from . import services
from .models import TaskFailure, TaskRunRollup

Meta = msgspec.Meta
NO_WORKER = "no worker answered within {timeout:.1f} s"


class TaskInfo(Result):
    id: str
    name: str
    worker: str
    args: str
    kwargs: str
    started_at: dt.datetime | None = None
    eta: str | None = None


class QueueInfo(Result):
    name: str
    depth: int


class OverviewResult(Result):
    broker: str
    queues: list[QueueInfo]
    unacked: int | None
    workers: list[str]
    worker_status: str
    active: list[TaskInfo]
    reserved: list[TaskInfo]
    scheduled: list[TaskInfo]


class FailedTasksParams(Params):
    task_name: Annotated[str, Meta(max_length=200)] | None = None
    hours: Annotated[int, Meta(ge=1, le=24 * 90)] = 24
    limit: Annotated[int, Meta(ge=1, le=500)] = 50


class FailedTask(Result):
    task_id: str
    task_name: str
    queue: str
    worker: str
    exception_type: str
    message: str
    failed_at: dt.datetime
    retried_as: str


class FailedTasksResult(Result):
    failures: list[FailedTask]
    count: int


class TaskIdParams(Params):
    task_id: Annotated[str, Meta(min_length=1, max_length=64)]


class TaskDetail(Result):
    task_id: str
    known: bool
    live_state: str | None  # active / reserved / scheduled on a worker right now
    worker: str | None
    failures: list[FailedTask]
    traceback: str


class RetryResult(Result):
    task_id: str
    new_task_id: str
    task_name: str
    already_retried: bool


class MetricsParams(Params):
    period: Literal["hour", "day", "week"] = "hour"
    task_name: Annotated[str, Meta(max_length=200)] | None = None


class TaskMetrics(Result):
    task_name: str
    runs: int
    succeeded: int
    failed: int
    retried: int
    per_minute: float
    avg_runtime_ms: float | None
    max_runtime_ms: float | None


class MetricsResult(Result):
    period: str
    since: dt.datetime
    tasks: list[TaskMetrics]


class WorkerInfo(Result):
    hostname: str
    pid: int | None
    concurrency: int | None
    uptime_s: int | None
    processed: dict[str, int]
    queues: list[str]
    active: int


class WorkersResult(Result):
    workers: list[WorkerInfo]
    status: str


class PurgeParams(Params):
    queue: Annotated[str, Meta(min_length=1, max_length=200)]
    confirm: Annotated[bool, Meta(description="Must be true: deletes every waiting message")] = False


class PurgeResult(Result):
    queue: str
    purged: int


_PERIODS = {"hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1), "week": dt.timedelta(weeks=1)}


def _task_info(raw: dict[str, Any], worker: str, eta: str | None = None) -> TaskInfo:
    started = raw.get("time_start")
    return TaskInfo(
        id=str(raw.get("id") or ""),
        name=str(raw.get("name") or ""),
        worker=worker,
        args=str(raw.get("args") or "")[:500],
        kwargs=str(raw.get("kwargs") or "")[:500],
        started_at=dt.datetime.fromtimestamp(started, tz=dt.UTC)
        if isinstance(started, int | float)
        else None,
        eta=eta,
    )


def _flatten(replies: dict[str, list[Any]], *, scheduled: bool = False) -> list[TaskInfo]:
    tasks = []
    for worker, items in sorted((replies or {}).items()):
        for item in items or []:
            if scheduled:
                tasks.append(_task_info(item.get("request") or {}, worker, eta=item.get("eta")))
            else:
                tasks.append(_task_info(item, worker))
    return tasks


def _failure(row: TaskFailure) -> FailedTask:
    return FailedTask(
        task_id=row.task_id,
        task_name=row.task_name,
        queue=row.queue,
        worker=row.worker,
        exception_type=row.exception_type,
        message=row.message,
        failed_at=row.failed_at,
        retried_as=row.retried_as,
    )


def _require_broker() -> None:
    if services.broker_kind() == "eager":
        raise MCPError(
            ErrorCode.NOT_CONFIGURED,
            "No Celery broker is configured (CELERY_BROKER_URL): tasks run eagerly, there is no queue",
        )


def _broker_error(exc: Exception) -> MCPError:
    return MCPError(ErrorCode.UPSTREAM_ERROR, f"The Celery broker is unreachable ({type(exc).__name__})")


class QueueServer(MCPServer):
    """Celery on the Redis broker: queues, workers, failures, throughput; purge for admins."""

    name = "queue"
    description = "Celery task queues: depths, workers, running tasks, failures, throughput, retry and purge."

    @operation(
        description="""Queues with the number of waiting messages (read from the broker), messages
        held unacknowledged by workers, the workers that answered, and their active, reserved
        (prefetched) and scheduled (ETA/countdown) tasks. Says so when no worker answers.""",
        params=NoParams,
        result=OverviewResult,
        scope="read",
        tenant_scoped=False,
        platform_only=True,
        read_only=True,
        open_world=True,
        timeout=10,
    )
    def get_overview(self, ctx: OperationContext, params: NoParams) -> OverviewResult:
        _require_broker()
        timeout = min(services.INSPECT_TIMEOUT_S, max(ctx.remaining() / 3, 0.1))
        try:
            queues = services.known_queues()
            depths, unacked = services.queue_depths(queues)
            inspected = services.inspect_workers(timeout=timeout, what=("active", "reserved", "scheduled"))
        except (OperationalError, OSError) as exc:
            raise _broker_error(exc) from None
        workers = inspected["workers"]
        return OverviewResult(
            broker=services.broker_kind(),
            queues=[QueueInfo(name=q, depth=depths[q]) for q in queues],
            unacked=unacked,
            workers=workers,
            worker_status=f"{len(workers)} worker(s) answered"
            if workers
            else NO_WORKER.format(timeout=timeout),
            active=_flatten(inspected.get("active", {})),
            reserved=_flatten(inspected.get("reserved", {})),
            scheduled=_flatten(inspected.get("scheduled", {}), scheduled=True),
        )

    @operation(
        description="Tasks that raised, newest first, as recorded by the workers when they failed.",
        params=FailedTasksParams,
        result=FailedTasksResult,
        scope="read",
        tenant_scoped=False,
        platform_only=True,
        read_only=True,
    )
    def get_failed_tasks(self, ctx: OperationContext, params: FailedTasksParams) -> FailedTasksResult:
        rows = TaskFailure.objects.filter(failed_at__gte=timezone.now() - dt.timedelta(hours=params.hours))
        if params.task_name:
            rows = rows.filter(task_name=params.task_name)
        failures = [_failure(r) for r in rows[: params.limit]]
        return FailedTasksResult(failures=failures, count=len(failures))

    @operation(
        description="""What is known about one task id: its recorded failures (with the traceback)
        and whether a worker holds it right now (active, reserved or scheduled).""",
        params=TaskIdParams,
        result=TaskDetail,
        scope="read",
        tenant_scoped=False,
        platform_only=True,
        read_only=True,
        open_world=True,
        timeout=10,
    )
    def get_task(self, ctx: OperationContext, params: TaskIdParams) -> TaskDetail:
        failures = list(TaskFailure.objects.filter(task_id=params.task_id))
        live_state, worker = None, None
        if services.broker_kind() != "eager":
            try:
                inspected = services.inspect_workers(
                    timeout=services.INSPECT_TIMEOUT_S, what=("active", "reserved", "scheduled")
                )
            except (OperationalError, OSError) as exc:
                raise _broker_error(exc) from None
            for state in ("active", "reserved", "scheduled"):
                for task in _flatten(inspected.get(state, {}), scheduled=state == "scheduled"):
                    if task.id == params.task_id:
                        live_state, worker = state, task.worker
        if not failures and live_state is None:
            raise MCPError(
                ErrorCode.NOT_FOUND,
                f"task_id: no failure recorded and no worker holds task {params.task_id}",
                details={"field": "task_id"},
            )
        return TaskDetail(
            task_id=params.task_id,
            known=True,
            live_state=live_state,
            worker=worker or (failures[0].worker if failures else None),
            failures=[_failure(f) for f in failures],
            traceback=failures[0].traceback if failures else "",
        )

    @operation(
        description="""Send a failed task again with the same name and arguments, to the queue it
        came from. Idempotent: a failure already retried returns the task it was retried as.""",
        params=TaskIdParams,
        result=RetryResult,
        scope="write",
        tenant_scoped=False,
        platform_only=True,
        idempotent=True,
        open_world=True,
        timeout=10,
    )
    def retry_task(self, ctx: OperationContext, params: TaskIdParams) -> RetryResult:
        _require_broker()
        failure = TaskFailure.objects.filter(task_id=params.task_id).order_by("-failed_at").first()
        if failure is None:
            raise MCPError(
                ErrorCode.NOT_FOUND,
                f"task_id: no recorded failure for task {params.task_id}",
                details={"field": "task_id"},
            )
        if failure.retried_as:
            return RetryResult(
                task_id=failure.task_id,
                new_task_id=failure.retried_as,
                task_name=failure.task_name,
                already_retried=True,
            )
        from askpro.celery import app

        try:
            sent = app.send_task(
                failure.task_name,
                args=failure.args,
                kwargs=failure.kwargs,
                queue=failure.queue or None,
            )
        except (OperationalError, OSError) as exc:
            raise _broker_error(exc) from None
        TaskFailure.objects.filter(task_id=failure.task_id, retried_as="").update(
            retried_as=sent.id, retried_at=timezone.now()
        )
        return RetryResult(
            task_id=failure.task_id, new_task_id=sent.id, task_name=failure.task_name, already_retried=False
        )

    @operation(
        description="""Throughput and runtime per task over the last hour, day or week: runs,
        succeeded, failed, retried, runs per minute, average and maximum runtime.""",
        params=MetricsParams,
        result=MetricsResult,
        scope="read",
        tenant_scoped=False,
        platform_only=True,
        read_only=True,
    )
    def get_metrics(self, ctx: OperationContext, params: MetricsParams) -> MetricsResult:
        window = _PERIODS[params.period]
        since = timezone.now() - window
        rows = TaskRunRollup.objects.filter(minute__gte=since.replace(second=0, microsecond=0))
        if params.task_name:
            rows = rows.filter(task_name=params.task_name)
        per_task: dict[str, dict[str, Any]] = {}
        for row in rows.values("task_name", "state").annotate(
            count=Sum("count"), total=Sum("total_ms"), max=Max("max_ms")
        ):
            entry = per_task.setdefault(row["task_name"], {"runs": 0, "states": {}, "total": 0.0, "max": 0.0})
            entry["runs"] += row["count"]
            entry["states"][row["state"]] = row["count"]
            entry["total"] += row["total"] or 0.0
            entry["max"] = max(entry["max"], row["max"] or 0.0)
        minutes = window.total_seconds() / 60
        tasks = [
            TaskMetrics(
                task_name=name,
                runs=e["runs"],
                succeeded=e["states"].get("SUCCESS", 0),
                failed=e["states"].get("FAILURE", 0),
                retried=e["states"].get("RETRY", 0),
                per_minute=round(e["runs"] / minutes, 3),
                avg_runtime_ms=round(e["total"] / e["runs"], 2) if e["runs"] else None,
                max_runtime_ms=round(e["max"], 2) if e["runs"] else None,
            )
            for name, e in sorted(per_task.items(), key=lambda item: -item[1]["runs"])
        ]
        return MetricsResult(period=params.period, since=since, tasks=tasks)

    @operation(
        description="""The workers that answer a broadcast: pid, pool concurrency, uptime, tasks
        processed by name, consumed queues and tasks running now. Says so when none answers.""",
        params=NoParams,
        result=WorkersResult,
        scope="read",
        tenant_scoped=False,
        platform_only=True,
        read_only=True,
        open_world=True,
        timeout=10,
    )
    def get_workers(self, ctx: OperationContext, params: NoParams) -> WorkersResult:
        _require_broker()
        timeout = min(services.INSPECT_TIMEOUT_S, max(ctx.remaining() / 3, 0.1))
        try:
            inspected = services.inspect_workers(timeout=timeout, what=("stats", "active_queues", "active"))
        except (OperationalError, OSError) as exc:
            raise _broker_error(exc) from None
        workers = []
        for host in inspected["workers"]:
            stats = inspected.get("stats", {}).get(host) or {}
            pool = stats.get("pool") or {}
            workers.append(
                WorkerInfo(
                    hostname=host,
                    pid=stats.get("pid"),
                    concurrency=pool.get("max-concurrency"),
                    uptime_s=stats.get("uptime"),
                    processed={str(k): int(v) for k, v in (stats.get("total") or {}).items()},
                    queues=sorted(
                        q.get("name", "") for q in inspected.get("active_queues", {}).get(host) or []
                    ),
                    active=len(inspected.get("active", {}).get(host) or []),
                )
            )
        status = f"{len(workers)} worker(s) answered" if workers else NO_WORKER.format(timeout=timeout)
        return WorkersResult(workers=workers, status=status)

    @operation(
        description="""Delete every message waiting in one queue (not tasks already held by workers).
        Destructive and irreversible: requires confirm=true. Only the app's own queues.""",
        params=PurgeParams,
        result=PurgeResult,
        scope="admin",
        tenant_scoped=False,
        platform_only=True,
        destructive=True,
        open_world=True,
        timeout=10,
    )
    def purge_queue(self, ctx: OperationContext, params: PurgeParams) -> PurgeResult:
        _require_broker()
        if not params.confirm:
            raise MCPError(
                ErrorCode.VALIDATION_ERROR,
                "confirm: must be true to purge a queue (this deletes every waiting message)",
                details={"field": "confirm", "problem": "invalid_value"},
            )
        queues = services.known_queues()
        if params.queue not in queues:
            raise MCPError(
                ErrorCode.NOT_FOUND,
                f"queue: {params.queue!r} is not one of this app's queues ({', '.join(queues)})",
                details={"field": "queue"},
            )
        try:
            purged = services.queue_purge(params.queue)
        except (OperationalError, OSError) as exc:
            raise _broker_error(exc) from None
        return PurgeResult(queue=params.queue, purged=purged)

    def is_configured(self) -> bool:
        return services.broker_kind() != "eager"

    def gauges(self) -> list[ServerGauge]:
        """Queue depths for /metrics, read from the broker (none when tasks run eagerly)."""
        if not self.is_configured():
            return []
        queues = services.known_queues()
        depths, unacked = services.queue_depths(queues)
        found = [
            ServerGauge("queue_depth", "Messages waiting in each Celery queue.", {"queue": q}, depths[q])
            for q in queues
        ]
        found.append(
            ServerGauge("queue_unacked", "Messages held by workers, not yet acknowledged.", {}, unacked)
        )
        return found

    def health(self) -> HealthResult:
        try:
            replies = services.inspect_workers(timeout=1.0)
        except (OperationalError, OSError) as exc:
            return HealthResult(HealthStatus.UNHEALTHY, f"broker unreachable: {type(exc).__name__}")
        if not replies["workers"]:
            return HealthResult(HealthStatus.UNHEALTHY, NO_WORKER.format(timeout=1.0))
        return HealthResult(HealthStatus.HEALTHY, f"{len(replies['workers'])} worker(s) answered")
