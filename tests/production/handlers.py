"""A webhook handler for the worker tests, plugged in through WEBHOOK_HANDLERS (the worker runs
tests.worker_settings). It notes in Redis which worker ran which attempt,
sleeps on the first attempt (long enough to be stopped or killed), and counts completions."""

from __future__ import annotations

import os
import time

import redis


def slow_first_attempt(event) -> str:
    r = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    key = event.payload["test_key"]
    # The pool process's parent is the worker's main process: the pid the test started.
    r.set(f"{key}:worker:{event.attempts}", os.getppid(), ex=600)
    if event.attempts == 1:
        time.sleep(float(event.payload["sleep"]))
    r.incr(f"{key}:completed")
    r.expire(f"{key}:completed", 600)
    return f"done on attempt {event.attempts}"
