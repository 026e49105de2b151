"""The connection pool manager: one report of every pool this process holds.

- database: the psycopg pool Django keeps when DATABASES[...]["OPTIONS"]["pool"] is set
  (PostgreSQL; DB_POOL_* settings): size, in use, idle, waiting requests, waits so far;
- http: the urllib3 pools behind each upstream's requests.Session (mcp_core.http);
- redis: the connection pool of the django-redis client of each Redis cache.

Numbers are per process (each gunicorn or Celery worker has its own pools).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connections

from .http import http_pools


def database_pools() -> dict[str, Any]:
    report: dict[str, Any] = {}
    for alias in connections:
        conn = connections[alias]
        entry: dict[str, Any] = {"vendor": conn.vendor}
        options = conn.settings_dict.get("OPTIONS", {})
        if conn.vendor != "postgresql" or not options.get("pool"):
            entry.update(pooled=False, detail="no connection pool (one connection per thread)")
            report[alias] = entry
            continue
        # Only a pool that exists: reading connection.pool would open one just to report it.
        pool = type(conn)._connection_pools.get(alias)
        if pool is None:
            entry.update(pooled=True, detail="pool not opened yet in this process")
            report[alias] = entry
            continue
        stats = pool.get_stats()
        size, idle = stats.get("pool_size", 0), stats.get("pool_available", 0)
        entry.update(
            pooled=True,
            min_size=stats.get("pool_min", pool.min_size),
            max_size=stats.get("pool_max", pool.max_size),
            size=size,
            in_use=max(0, size - idle),
            idle=idle,
            waiting=stats.get("requests_waiting", 0),
            requests=stats.get("requests_num", 0),
            requests_queued=stats.get("requests_queued", 0),
            wait_ms_total=stats.get("requests_wait_ms", 0),
            request_errors=stats.get("requests_errors", 0),
            connections_opened=stats.get("connections_num", 0),
            connections_lost=stats.get("connections_lost", 0),
        )
        report[alias] = entry
    return report


def _urllib3_pool(pool: Any) -> dict[str, Any]:
    queue = getattr(pool, "pool", None)
    idle = 0
    free_slots = 0
    if queue is not None:
        with queue.mutex:  # a snapshot of the LIFO queue: connections and empty slots
            items = list(queue.queue)
        idle = sum(1 for item in items if item is not None)
        free_slots = len(items)
    maxsize = getattr(pool, "maxsize", 0)
    return {
        "host": f"{pool.scheme}://{pool.host}:{pool.port}",
        "max_size": maxsize,
        "in_use": max(0, maxsize - free_slots),
        "idle": idle,
        "connections_opened": getattr(pool, "num_connections", 0),
        "requests": getattr(pool, "num_requests", 0),
        "blocking": bool(getattr(pool, "block", False)),
    }


def http_pool_report() -> list[dict[str, Any]]:
    rows = []
    for (service, base_url), session in sorted(http_pools().items()):
        hosts = []
        for adapter in {id(a): a for a in session.adapters.values()}.values():
            manager = getattr(adapter, "poolmanager", None)
            if manager is None:
                continue
            for key in list(manager.pools.keys()):
                pool = manager.pools.get(key)
                if pool is not None:
                    hosts.append(_urllib3_pool(pool))
        rows.append({"service": service, "base_url": base_url, "pools": hosts})
    return rows


def redis_pools() -> dict[str, Any]:
    report: dict[str, Any] = {}
    for alias, config in settings.CACHES.items():
        if not config.get("BACKEND", "").startswith("django_redis."):
            continue
        try:
            from django_redis import get_redis_connection

            pool = get_redis_connection(alias).connection_pool
        except Exception as exc:  # noqa: BLE001 - report the problem, never fail the report
            report[alias] = {"error": type(exc).__name__}
            continue
        # redis-py keeps these as private attributes; read defensively across versions.
        created = getattr(pool, "_created_connections", None)
        available = getattr(pool, "_available_connections", [])
        in_use = getattr(pool, "_in_use_connections", set())
        report[alias] = {
            "max_connections": getattr(pool, "max_connections", None),
            "created": created,
            "in_use": len(in_use),
            "available": len(available),
        }
    return report


def pool_report() -> dict[str, Any]:
    """Every pool of this process; the selector for GET /api/v1/mcp/health and the dashboard."""
    return {"database": database_pools(), "http": http_pool_report(), "redis": redis_pools()}
