"""Readers of the parts other apps own: breakers, pools, the Celery queue, webhooks.

Each function returns {"available": False, "reason": ...} when the part is not installed or
cannot be read, so that a page says so instead of showing a number that means nothing.
Modules are imported lazily and optionally: `dashboard` must work with any set of servers.
"""

from __future__ import annotations

import importlib
from datetime import datetime
from typing import Any

from django.apps import apps


def unavailable(reason: str) -> dict[str, Any]:
    return {"available": False, "reason": reason}


def optional_module(path: str):
    """The module if it is part of this build, else None."""
    try:
        return importlib.import_module(path)
    except ImportError:
        return None


def optional_model(app_label: str, name: str):
    try:
        return apps.get_model(app_label, name)
    except LookupError:
        return None


# --- circuit breakers (mcp_core.breaker) ---
def breaker_states(services: list[str]) -> dict[str, Any]:
    breaker = optional_module("mcp_core.breaker")
    if breaker is None or not hasattr(breaker, "breaker_states"):
        return unavailable("no circuit breaker is installed")
    try:
        rows = breaker.breaker_states()
    except Exception as exc:
        return unavailable(f"breaker state unreadable ({type(exc).__name__})")
    states = {}
    for row in rows:
        if row["service"] in services:
            states[row["service"]] = {k: v for k, v in row.items() if k != "config"}
    return {"available": True, "states": states}


def breaker_transitions_missing() -> str | None:
    if optional_model("mcp_core", "BreakerTransition") is None:
        return "breaker transitions are not recorded (no circuit breaker installed)"
    return None


def breaker_transitions(since: datetime, limit: int = 50) -> dict[str, Any]:
    model = optional_model("mcp_core", "BreakerTransition")
    if model is None:
        return unavailable("breaker transitions are not recorded (no circuit breaker installed)")
    rows = list(
        model.objects.filter(at__gte=since)
        .order_by("-at")
        .values("service", "from_state", "to_state", "reason", "at")[:limit]
    )
    return {"available": True, "items": rows, "time_field": "at"}


def breaker_reset(service: str, *, actor: str) -> str:
    breaker = optional_module("mcp_core.breaker")
    if breaker is None or not hasattr(breaker, "breaker_reset"):
        raise RuntimeError("no circuit breaker is installed")

    class _Actor:  # breaker_reset records who acted; the engine is not a user
        pk = None

        @staticmethod
        def get_username() -> str:
            return actor

    return breaker.breaker_reset(service, user=_Actor())


# --- connection pools (mcp_core.pools) ---
def pools() -> dict[str, Any]:
    module = optional_module("mcp_core.pools")
    if module is None or not hasattr(module, "pool_report"):
        return unavailable("no pool manager is installed")
    try:
        return {"available": True, **module.pool_report()}
    except Exception as exc:
        return unavailable(f"pool report failed ({type(exc).__name__})")


# --- the task queue (mcp_servers.queue) ---
def queue_depth() -> dict[str, Any]:
    services = optional_module("mcp_servers.queue.services")
    if services is None or not hasattr(services, "queue_depths"):
        return unavailable("the queue app is not installed")
    kind = services.broker_kind()
    if kind == "eager":
        return unavailable("no broker: tasks run eagerly in the calling process")
    try:
        depths, unacked = services.queue_depths(services.known_queues())
    except Exception as exc:
        return unavailable(f"broker unreachable ({type(exc).__name__})")
    return {
        "available": True,
        "broker": kind,
        "queues": depths,
        "unacked": unacked,
        "total": sum(depths.values()),
    }


def task_failures(since: datetime) -> dict[str, Any]:
    model = optional_model("mcp_queue", "TaskFailure")
    if model is None:
        return unavailable("task failures are not recorded (the queue app is not installed)")
    by_task = list(
        model.objects.filter(failed_at__gte=since)
        .values("task_name")
        .annotate(n=_count())
        .order_by("-n")[:20]
    )
    return {"available": True, "by_task": by_task, "total": sum(r["n"] for r in by_task)}


# --- webhooks (mcp_servers.webhooks) ---
def webhook_backlog(*, tenant_ids: frozenset[int] | None = None) -> dict[str, Any]:
    """Webhook events waiting or failed; with `tenant_ids`, only those tenants' events."""
    model = optional_model("mcp_webhooks", "WebhookEvent")
    if model is None:
        return unavailable("the webhooks app is not installed")
    counts = dict.fromkeys(["received", "processing", "failed"], 0)
    events = model.objects.filter(status__in=list(counts))
    if tenant_ids is not None:
        events = events.filter(tenant_id__in=tenant_ids)
    for row in events.values("status").annotate(n=_count()).order_by():
        counts[row["status"]] = row["n"]
    return {"available": True, "waiting": counts["received"] + counts["processing"], **counts}


def webhook_retry_failed(since: datetime) -> int:
    model = optional_model("mcp_webhooks", "WebhookEvent")
    services = optional_module("mcp_servers.webhooks.services")
    if model is None or services is None or not hasattr(services, "webhook_replay"):
        raise RuntimeError("the webhooks app offers no replay service")
    events = list(model.objects.filter(status="failed", received_at__gte=since).order_by("received_at")[:500])
    return sum(1 for event in events if services.webhook_replay(event) == "queued")


def _count():
    from django.db.models import Count

    return Count("id")
