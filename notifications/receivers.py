"""What the workflow hears from the servers (mcp_core.signals), each a call to a service or a
task queued once the sender's transaction commits."""

from __future__ import annotations

from django.db import transaction
from django.dispatch import receiver

from mcp_core import signals

from . import services, tasks


@receiver(signals.appointment_changed, dispatch_uid="notifications.appointment_changed")
def appointment_changed(sender, appointment_id: int, change: str, **kwargs) -> None:
    services.on_appointment_changed(appointment_id, change)


@receiver(signals.inbound_message_received, dispatch_uid="notifications.inbound_message")
def inbound_message(
    sender, company_id: int, message_id: int, sender_address: str, body: str, **kwargs
) -> None:
    if services.texts.reply_action(body) is None:
        return  # most messages are not replies: no task for them
    transaction.on_commit(lambda: tasks.handle_reply.delay(company_id, sender_address, body, message_id))


@receiver(signals.outbound_message_updated, dispatch_uid="notifications.outbound_update")
def outbound_update(sender, company_id: int, service: str, message_id: int, status: str, price, price_unit: str,
                    **kwargs) -> None:  # fmt: skip
    with transaction.atomic():  # a savepoint: a failure here never breaks the callback's transaction
        services.apply_outbound_update(company_id, service, message_id, status, price, price_unit)
