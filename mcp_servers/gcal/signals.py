"""Appointment changes reach Google through the queue: after the commit, a task writes, moves
or deletes the appointment's event (appointments.py). Tenants without Google Calendar (or with
two-way sync off) cost one indexed lookup per save."""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models.signals import post_save, pre_delete
from django.dispatch import receiver

from askpro.models import Appointment

from .models import EventLink, GoogleAccount

logger = logging.getLogger(__name__)


def _enqueue(task, arg: int) -> None:
    try:
        task.delay(arg)
    except Exception:  # the broker is down: the next save or sync_calendar catches up
        logger.warning("gcal: could not enqueue %s(%s)", task.name, arg)


@receiver(post_save, sender=Appointment, dispatch_uid="gcal_appointment_saved")
def appointment_saved(sender, instance: Appointment, **kwargs) -> None:
    if not GoogleAccount.objects.filter(company_id=instance.company_id, two_way_sync=True).exists():
        return
    from .tasks import push_appointment

    transaction.on_commit(lambda: _enqueue(push_appointment, instance.pk))


@receiver(pre_delete, sender=Appointment, dispatch_uid="gcal_appointment_deleted")
def appointment_deleted(sender, instance: Appointment, **kwargs) -> None:
    link_id = EventLink.objects.filter(appointment_id=instance.pk).values_list("pk", flat=True).first()
    if link_id is None:
        return
    from .tasks import remove_event

    transaction.on_commit(lambda: _enqueue(remove_event, link_id))
