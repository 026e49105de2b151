"""Celery signal receivers: record task runs and failures (thin; the service does the work)."""

import logging

from celery.signals import task_failure, task_postrun, task_prerun
from django.db import DatabaseError

from .services import task_failure_record, task_run_finished, task_run_started

logger = logging.getLogger(__name__)


@task_prerun.connect(dispatch_uid="queue_task_prerun")
def _prerun(task_id=None, task=None, **kwargs):
    task_run_started(task_id)


@task_postrun.connect(dispatch_uid="queue_task_postrun")
def _postrun(task_id=None, task=None, state=None, **kwargs):
    try:
        task_run_finished(task_id, task.name if task else "?", str(state or "UNKNOWN"))
    except DatabaseError:  # bookkeeping must never fail the task
        logger.exception("could not record the run of task %s", task_id)


@task_failure.connect(dispatch_uid="queue_task_failure")
def _failure(sender=None, task_id=None, exception=None, args=None, kwargs=None, einfo=None, **extra):
    try:
        task_failure_record(
            task_id=task_id,
            task_name=getattr(sender, "name", "?"),
            exception=exception,
            args=args,
            kwargs=kwargs,
            einfo=einfo,
            request=getattr(sender, "request", None),
        )
    except DatabaseError:
        logger.exception("could not record the failure of task %s", task_id)
