"""Celery tasks: thin wrappers over services.webhook_process and webhook_sweep."""

from celery import shared_task

from .services import webhook_enqueue, webhook_process, webhook_sweep


@shared_task(
    bind=True, name="webhooks.process_event", acks_late=True, reject_on_worker_lost=True, ignore_result=True
)
def process_webhook_event(self, event_id: int) -> str:
    outcome = webhook_process(event_id)
    if outcome.state == "busy" and self.request.is_eager:
        return outcome.state  # eager mode cannot wait for another worker; the sweeper will
    if outcome.retry_in is not None:
        # The attempt count lives on the event, so a retry is simply the same task again later.
        webhook_enqueue(event_id, countdown=outcome.retry_in)
    return outcome.state


@shared_task(name="webhooks.sweep", ignore_result=True)
def sweep_webhook_events() -> int:
    """Run every minute (beat): re-enqueue events whose message was lost or whose worker died."""
    return webhook_sweep()
