"""Celery tasks: thin wrappers over services."""

from celery import shared_task

from .services import send_due_deferred


@shared_task(name="messaging.send_deferred", ignore_result=True)
def send_deferred_messages() -> dict[str, int]:
    """Run every minute (beat): send the messages deferred by quiet hours whose time has come."""
    return send_due_deferred()
