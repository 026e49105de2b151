"""The Celery app. Without CELERY_BROKER_URL, tasks run eagerly (see settings)."""

import os

from celery import Celery
from celery.signals import worker_process_shutdown

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
