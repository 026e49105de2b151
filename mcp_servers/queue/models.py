"""What the queue server remembers about Celery: failures as they happen and per-minute
rollups of task runs (the broker itself forgets both)."""

from django.db import models


class TaskFailure(models.Model):
    """A task that raised, recorded by the task_failure signal in the worker."""

    task_id = models.CharField(max_length=64, db_index=True)
    task_name = models.CharField(max_length=200)
    queue = models.CharField(max_length=200, blank=True, default="")
    worker = models.CharField(max_length=200, blank=True, default="")
    exception_type = models.CharField(max_length=200)
    message = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    # Kept so that retry_task can send the same call again; JSON only (else empty).
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    retries = models.PositiveIntegerField(default=0)
    failed_at = models.DateTimeField(auto_now_add=True, db_index=True)
    retried_at = models.DateTimeField(null=True, blank=True)
    retried_as = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-failed_at"]
        indexes = [models.Index(fields=["task_name", "failed_at"], name="taskfailure_name_failed")]

    def __str__(self) -> str:
        return f"{self.task_name} {self.task_id}: {self.exception_type}"


class TaskRunRollup(models.Model):
    """Task runs per minute, task and final state, with runtime totals (from task_postrun)."""

    minute = models.DateTimeField()
    task_name = models.CharField(max_length=200)
    state = models.CharField(max_length=20)
    count = models.PositiveIntegerField(default=0)
    total_ms = models.FloatField(default=0)
    max_ms = models.FloatField(default=0)

    class Meta:
        ordering = ["-minute"]
        constraints = [
            models.UniqueConstraint(fields=["minute", "task_name", "state"], name="taskrun_unique_bucket")
        ]
        indexes = [models.Index(fields=["task_name", "minute"], name="taskrun_name_minute")]

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M} {self.task_name} {self.state} x{self.count}"
