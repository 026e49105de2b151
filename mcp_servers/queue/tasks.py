"""Operator diagnostics for the queue server."""

import time

from celery import shared_task


class CanaryFailure(Exception):
    """Raised on request, to see a failure travel through recording and retry."""


@shared_task(name="queue.canary")
def canary(sleep_s: float = 0.0, fail: bool = False) -> str:
    """A probe task: optionally sleeps, optionally fails. Shows a worker picks work up."""
    if sleep_s:
        time.sleep(min(float(sleep_s), 60.0))
    if fail:
        raise CanaryFailure("canary asked to fail")
    return "ok"
