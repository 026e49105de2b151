"""Handlers for tests, plugged in with settings.WEBHOOK_HANDLERS (also by the worker tests,
through worker_settings). Their state lives in Redis (a per-test key), so a worker process
and the test process see the same counters."""

from __future__ import annotations

import os
import time

import redis

from mcp_core.registry import get_registry
from mcp_core.webhooks import HandlerError


def _retell_handle(event) -> str:
    """The real Retell handler, as the Retell server declares it."""
    return get_registry().get_webhook("retell").handle(event)


def counter_redis():
    return redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))


def fails_twice_then_succeeds(event) -> str:
    """Raises on the first two attempts of an event, then applies the real Retell handler."""
    key = f"{event.payload['test_key']}:calls"
    calls = counter_redis().incr(key)
    counter_redis().expire(key, 600)
    if calls <= 2:
        raise HandlerError(f"transient failure #{calls}")
    return _retell_handle(event)


def slow_on_first_attempt(event) -> str:
    """Marks that it started, then sleeps on attempt 1 (long enough to be killed)."""
    r = counter_redis()
    r.set(f"{event.payload['test_key']}:started:{event.attempts}", "1", ex=600)
    if event.attempts == 1:
        time.sleep(float(event.payload.get("sleep", 30)))
    r.incr(f"{event.payload['test_key']}:completed")
    r.expire(f"{event.payload['test_key']}:completed", 600)
    return _retell_handle(event)
