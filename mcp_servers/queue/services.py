"""Celery, seen from the control plane: queue depths read from the Redis broker, workers
through broadcast inspection, and task runs and failures recorded by signals."""

from __future__ import annotations

import json
import time
import traceback as tb
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from django.db import connection
from django.utils import timezone

from askpro.celery import app

from .models import TaskFailure, TaskRunRollup

INSPECT_TIMEOUT_S = 1.0
BROKER_CONNECT_TIMEOUT_S = 2.0


# --- recording (called from celery signals) ---
_started: dict[str, float] = {}


def task_run_started(task_id: str) -> None:
    _started[task_id] = time.perf_counter()


def task_run_finished(task_id: str, task_name: str, state: str) -> None:
    """Add one run to its per-minute rollup (one upsert)."""
    began = _started.pop(task_id, None)
    runtime_ms = (time.perf_counter() - began) * 1000 if began is not None else 0.0
    minute = timezone.now().replace(second=0, microsecond=0)
    table = connection.ops.quote_name(TaskRunRollup._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (minute, task_name, state, count, total_ms, max_ms) "
            "VALUES (%s, %s, %s, 1, %s, %s) ON CONFLICT (minute, task_name, state) DO UPDATE SET "
            f"count = {table}.count + 1, total_ms = {table}.total_ms + excluded.total_ms, "
            f"max_ms = CASE WHEN excluded.max_ms > {table}.max_ms THEN excluded.max_ms ELSE {table}.max_ms END",
            [minute, task_name[:200], state[:20], runtime_ms, runtime_ms],
        )


def _jsonable(value: Any, default: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return default
    return value


def task_failure_record(
    *,
    task_id: str,
    task_name: str,
    exception: BaseException,
    args: Any,
    kwargs: Any,
    einfo: Any,
    request: Any,
) -> TaskFailure:
    delivery = getattr(request, "delivery_info", None) or {}
    trace = str(einfo.traceback) if einfo is not None else "".join(tb.format_exception(exception))
    return TaskFailure.objects.create(
        task_id=task_id or "",
        task_name=task_name or "",
        queue=str(delivery.get("routing_key") or "")[:200],
        worker=str(getattr(request, "hostname", "") or "")[:200],
        exception_type=type(exception).__name__[:200],
        message=str(exception)[:2000],
        traceback=trace[-10000:],
        args=_jsonable(list(args or []), []),
        kwargs=_jsonable(dict(kwargs or {}), {}),
        retries=int(getattr(request, "retries", 0) or 0),
    )


# --- the broker ---
@contextmanager
def broker_connection(connect_timeout: float = BROKER_CONNECT_TIMEOUT_S) -> Iterator[Any]:
    """A broker connection that fails fast (one attempt) instead of kombu's default retrying
    for many seconds, so an operation on a dead broker answers within its deadline."""
    conn = app.connection_for_write()
    try:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=connect_timeout)
        yield conn
    finally:
        conn.release()


def broker_kind() -> str:
    url = app.conf.broker_url or ""
    if app.conf.task_always_eager or not url:
        return "eager"
    return url.split(":", 1)[0]


def known_queues() -> list[str]:
    names = {app.conf.task_default_queue or "celery"}
    names |= set(app.amqp.queues.keys())
    return sorted(names)


def queue_depths(queues: list[str]) -> tuple[dict[str, int], int]:
    """Messages waiting per queue (kombu's size: LLEN summed over the priority lists) and
    messages delivered to workers but not yet acknowledged (the `unacked` hash), read from the
    Redis broker (key prefix applied by kombu)."""
    with broker_connection() as conn:
        channel = conn.default_channel
        depths = {queue: int(channel._size(queue)) for queue in queues}
        unacked = int(channel.client.hlen(channel.unacked_key))
    return depths, unacked


def queue_purge(queue: str) -> int:
    with broker_connection() as conn:
        return int(conn.default_channel.queue_purge(queue) or 0)


# --- workers ---
def inspect_workers(*, timeout: float = INSPECT_TIMEOUT_S, what: tuple[str, ...] = ()) -> dict[str, Any]:
    """Ping, then ask the workers that answered for `what` (stats, active, reserved, scheduled,
    active_queues) in parallel, waiting only for that many replies."""
    with broker_connection() as conn:
        replies = app.control.ping(timeout=timeout, connection=conn) or []
    hosts = sorted(host for reply in replies for host in reply)
    result: dict[str, Any] = {"workers": hosts}
    if not hosts or not what:
        return result

    def ask(name: str) -> tuple[str, dict[str, Any]]:
        # One connection per concurrent broadcast: kombu connections are not thread-safe.
        with broker_connection() as conn:
            inspector = app.control.inspect(
                destination=hosts, timeout=timeout, limit=len(hosts), connection=conn
            )
            return name, getattr(inspector, name)() or {}

    with ThreadPoolExecutor(max_workers=len(what)) as pool:
        for name, value in pool.map(ask, what):
            result[name] = value
    return result
