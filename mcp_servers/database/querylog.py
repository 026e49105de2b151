"""Timings the project captures itself: statements slower than MCP_SLOW_QUERY_MS, grouped by
shape, kept in the cache. Used when pg_stat_statements is not loaded (it needs
shared_preload_libraries, which we do not control on a shared server).

Counts are approximate under concurrent updates (read-modify-write in the cache): fine for
finding slow shapes, never used for accounting.
"""

from __future__ import annotations

import contextvars
import hashlib
import re
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

INDEX_KEY = "mcp:slowq:index"
ENTRY_KEY = "mcp:slowq:{}"
TTL = 7 * 24 * 3600
MAX_SHAPES = 200

_recording = contextvars.ContextVar("slow_query_recording", default=False)


def normalise(sql: str) -> str:
    """The statement's shape: literals and placeholders replaced, whitespace folded."""
    sql = re.sub(r"'(?:[^']|'')*'", "?", sql)
    sql = re.sub(r"\b\d+(\.\d+)?\b", "?", sql)
    sql = sql.replace("%s", "?")
    sql = re.sub(r"\(\s*\?(\s*,\s*\?)+\s*\)", "(?…)", sql)  # IN lists of any length are one shape
    return re.sub(r"\s+", " ", sql).strip()


def fingerprint(sql: str) -> str:
    return hashlib.sha1(normalise(sql).lower().encode(), usedforsecurity=False).hexdigest()[:16]


def record(sql: str, duration_ms: float) -> None:
    if _recording.get():
        return
    token = _recording.set(True)
    try:
        key = fingerprint(sql)
        entry = cache.get(ENTRY_KEY.format(key)) or {
            "query": normalise(sql)[:4000],
            "calls": 0,
            "total_ms": 0.0,
            "max_ms": 0.0,
        }
        entry["calls"] += 1
        entry["total_ms"] += duration_ms
        entry["max_ms"] = max(entry["max_ms"], duration_ms)
        entry["last_seen"] = timezone.now().isoformat()
        cache.set(ENTRY_KEY.format(key), entry, TTL)
        index = cache.get(INDEX_KEY) or []
        if key not in index:
            cache.set(INDEX_KEY, [*index, key][-MAX_SHAPES:], TTL)
    except Exception:  # noqa: S110 - bookkeeping must never break the query it measures
        pass
    finally:
        _recording.reset(token)


def slow_query_wrapper(execute, sql, params, many, context):
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        elapsed_ms = (time.perf_counter() - started) * 1000
        if elapsed_ms >= settings.MCP_SLOW_QUERY_MS:
            record(sql, elapsed_ms)


def install(sender, connection, **kwargs) -> None:
    """connection_created handler: wrap every statement of the new connection."""
    if slow_query_wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.append(slow_query_wrapper)


def captured(limit: int = 20) -> list[dict[str, Any]]:
    """Captured shapes, slowest in total first."""
    keys = cache.get(INDEX_KEY) or []
    entries = cache.get_many([ENTRY_KEY.format(k) for k in keys])
    rows = [{"id": key, **entries[ENTRY_KEY.format(key)]} for key in keys if ENTRY_KEY.format(key) in entries]
    for row in rows:
        row["mean_ms"] = row["total_ms"] / max(row["calls"], 1)
    rows.sort(key=lambda r: -r["total_ms"])
    return rows[:limit]


def clear() -> None:
    for key in cache.get(INDEX_KEY) or []:
        cache.delete(ENTRY_KEY.format(key))
    cache.delete(INDEX_KEY)


def slow_query_rows(limit: int) -> tuple[list[dict[str, Any]], str]:
    """Slow query shapes: pg_stat_statements when it is loaded, else our own capture."""
    if connection.vendor == "postgresql":
        try:
            with connection.cursor() as cursor, transaction.atomic():
                cursor.execute(
                    "SELECT query, calls, mean_exec_time, max_exec_time, total_exec_time FROM pg_stat_statements "
                    "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                    "ORDER BY total_exec_time DESC LIMIT %s",
                    [limit],
                )
                rows = cursor.fetchall()
            return (
                [
                    {"query": q, "calls": c, "mean_ms": m, "max_ms": x, "total_ms": t}
                    for q, c, m, x, t in rows
                ],
                "pg_stat_statements",
            )
        except DatabaseError:
            pass  # not installed or not preloaded: fall back to the project's own timings
    return captured(limit), f"captured timings (statements over {settings.MCP_SLOW_QUERY_MS} ms)"
