"""Celery tasks: thin wrappers over the two-way sync (appointments.py, push.py)."""

from __future__ import annotations

import logging

from celery import shared_task

from mcp_core.contracts import MCPError

from . import appointments, push

logger = logging.getLogger(__name__)
RETRY_COUNTDOWN_S = 60


def _later(task, exc: MCPError, what: str) -> str:
    """A failed write is tried again a minute later (with a broker; eager runs do not wait)."""
    logger.warning("gcal %s failed: %s", what, exc.message)
    if not task.app.conf.task_always_eager and task.request.retries < task.max_retries:
        raise task.retry(countdown=RETRY_COUNTDOWN_S) from None
    return f"failed: {exc.code}"


@shared_task(bind=True, name="gcal.push_appointment", ignore_result=True, max_retries=5)
def push_appointment(self, appointment_id: int) -> str:
    """An appointment was saved: make its event in the staff's calendar match it."""
    try:
        return appointments.push_appointment(appointment_id)
    except MCPError as exc:
        return _later(self, exc, f"event of appointment {appointment_id}")


@shared_task(bind=True, name="gcal.remove_event", ignore_result=True, max_retries=5)
def remove_event(self, link_id: int) -> str:
    """An appointment was deleted: delete its event."""
    try:
        return appointments.remove_event(link_id)
    except MCPError as exc:
        return _later(self, exc, f"removal of event link {link_id}")


@shared_task(name="gcal.renew_channels", ignore_result=True)
def renew_channels() -> int:
    """Run hourly (beat): reopen push channels that expire within a day."""
    return push.renew_expiring()
