"""The Celery app. Without CELERY_BROKER_URL, tasks run eagerly (see settings)."""

import gc
import os

from celery import Celery
from celery.signals import worker_process_init, worker_process_shutdown, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "askpro.settings")

app = Celery("askpro")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_shutdown.connect
def _forget_live_gauges(pid: int | None = None, **kwargs) -> None:
    """A prefork child that exits takes its live gauges (audit queue, pools) out of /metrics;
    its counters stay (PROMETHEUS_MULTIPROC_DIR, docs/observability.md)."""
    from mcp_core.prometheus import mark_process_dead

    mark_process_dead(pid or os.getpid())


@worker_ready.connect  # the threads and solo pools run tasks in the worker process itself
@worker_process_init.connect  # prefork: each child
def freeze_startup_objects(**kwargs) -> None:
    """Put what start-up loaded (Django, the apps, the registry: about 200,000 objects) out of
    the garbage collector's reach. Every full collection walked all of it again: 12 % of the
    CPU a chunk of reminders took, 3 % after this (docs/benchmarks.md)."""
    gc.collect()
    gc.freeze()
