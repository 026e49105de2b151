"""A test-only task: record who sent it (the beat's `origin`) and which worker ran it, in a Redis
list of the process group's own Redis."""

from __future__ import annotations

import json
import time

from celery import shared_task


@shared_task(bind=True, name="cluster.record", ignore_result=True)
def record(self, key: str) -> None:
    from django_redis import get_redis_connection

    entry = {"origin": self.request.origin, "worker": self.request.hostname, "at": time.time()}
    get_redis_connection("default").rpush(key, json.dumps(entry))
