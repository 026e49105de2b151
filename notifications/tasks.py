"""Celery tasks: thin wrappers over services."""

from celery import shared_task

from . import services


@shared_task(name="notifications.sweep", ignore_result=True)
def sweep_reminders() -> dict[str, int]:
    """Every minute (beat): hand the due reminders to the workers."""
    return services.sweep()


@shared_task(name="notifications.send_reminders", ignore_result=True)
def send_reminders(ids: list[int]) -> dict[str, int]:
    """Claim and send one chunk of queued reminders."""
    return services.send_reminders(ids)


@shared_task(name="notifications.send_change_message", ignore_result=True)
def send_change_message(appointment_id: int, change: str) -> str:
    """The booking, rescheduling or cancellation message of one appointment."""
    return services.send_change_message(appointment_id, change)


@shared_task(name="notifications.handle_reply", ignore_result=True)
def handle_reply(company_id: int, number: str, body: str, message_id: int) -> str:
    """A customer's answer to a reminder."""
    return services.handle_reply(company_id, number, body, message_id)
