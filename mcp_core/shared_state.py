"""Where the rate limiter and the circuit breakers keep state that every process must share.

With a django-redis cache as settings.MCP_RESILIENCE_CACHE, the state lives in that Redis
(one Lua script per decision, so each decision is atomic and one round trip). With any
other cache (REDIS_URL unset -> LocMem) it lives in this process's memory: correct for a
single process, documented as such.

When Redis fails, the callers fail open: the platform keeps serving without limits or
breakers. This module remembers the failure, logs it at most once per
MCP_RESILIENCE_LOG_INTERVAL, stops asking Redis for MCP_RESILIENCE_REDIS_RETRY_SECONDS
(so a dead Redis costs one failed connect per pause, not one per call) and reports itself
degraded to the health page.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.cache import caches

logger = logging.getLogger("mcp_core.resilience")


class SharedStateUnavailable(Exception):
    """Redis is configured but cannot be used right now; the caller fails open."""


def _alias() -> str:
    return settings.MCP_RESILIENCE_CACHE


def uses_redis() -> bool:
    """True when the resilience cache is django-redis (shared state), False for process memory."""
    backend = settings.CACHES.get(_alias(), {}).get("BACKEND", "")
    return backend.startswith("django_redis.")


def make_key(key: str) -> str:
    """The cache's own prefixing, so test runs and deployments never share counters by accident."""
    return caches[_alias()].make_key(key)


class _Health:
    """This process's view of the shared-state backend: last failure, pause, fail-open count."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.last_error: str | None = None
        self.last_error_at: float | None = None  # time.time()
        self.paused_until = 0.0  # time.monotonic()
        self.fail_open_calls = 0
        self.last_logged = 0.0
        self.suppressed_logs = 0

    def failed(self, what: str, exc: BaseException) -> None:
        now = time.monotonic()
        pause = float(settings.MCP_RESILIENCE_REDIS_RETRY_SECONDS)
        interval = float(settings.MCP_RESILIENCE_LOG_INTERVAL)
        with self.lock:
            # Only the exception's class: a redis error message can carry the URL (and its password).
            self.last_error = f"{what}: {type(exc).__name__}"
            self.last_error_at = time.time()
            self.paused_until = now + pause
            self.fail_open_calls += 1
            should_log = now - self.last_logged >= interval or self.last_logged == 0.0
            suppressed = self.suppressed_logs
            if should_log:
                self.last_logged = now
                self.suppressed_logs = 0
            else:
                self.suppressed_logs += 1
        if should_log:
            logger.error(
                "resilience state unavailable (%s: %s); rate limits and circuit breakers fail open "
                "for %.0fs%s",
                what,
                type(exc).__name__,
                pause,
                f" ({suppressed} similar errors not logged)" if suppressed else "",
            )

    def skipped(self) -> None:
        with self.lock:
            self.fail_open_calls += 1

    def paused(self) -> bool:
        return time.monotonic() < self.paused_until

    def recovered(self) -> None:
        if self.last_error is None:
            return
        with self.lock:
            if self.last_error is None:
                return
            self.last_error = None
            self.paused_until = 0.0
        logger.warning("resilience state available again; rate limits and circuit breakers enforced")


health = _Health()


def redis_client() -> Any:
    """The raw redis client of the resilience cache (its connection pool is shared per process)."""
    from django_redis import get_redis_connection

    return get_redis_connection(_alias())


def run_script(script: Any, keys: Sequence[str], args: Sequence[Any], *, what: str) -> Any:
    """Run a registered Lua script; SharedStateUnavailable when Redis is paused or failing."""
    import redis

    if health.paused():
        health.skipped()
        raise SharedStateUnavailable(what)
    try:
        result = script(keys=list(keys), args=list(args), client=redis_client())
    except (redis.RedisError, OSError) as exc:
        health.failed(what, exc)
        raise SharedStateUnavailable(what) from None
    if health.last_error is not None:
        health.recovered()
    return result


def resilience_status(*, probe: bool = True) -> dict[str, Any]:
    """For the health page and the dashboard: where the state lives and whether it works.

    With probe=True a PING (bounded by the client's socket timeouts) checks Redis now, so
    a Redis that died since the last call shows up at once.
    """
    if not uses_redis():
        return {
            "status": "healthy",
            "backend": "local",
            "detail": "no Redis configured: limits and breakers are per process",
        }
    error = None
    if probe:
        import redis

        try:
            redis_client().ping()
        except (redis.RedisError, OSError) as exc:
            error = f"ping: {type(exc).__name__}"
    recent = health.last_error is not None and (time.time() - (health.last_error_at or 0)) < 60
    if error or recent or health.paused():
        return {
            "status": "degraded",
            "backend": "redis",
            "detail": "Redis unavailable: rate limits and circuit breakers fail open",
            "last_error": error or health.last_error,
            "fail_open_calls": health.fail_open_calls,
        }
    return {"status": "healthy", "backend": "redis", "detail": "", "fail_open_calls": health.fail_open_calls}
