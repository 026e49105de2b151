"""The admin: the reminder plan and messages on an appointment, an appointment saved here told to
the customer like one from Cal.com, the settings validated, the delivery rates on the dashboard."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from notifications import services
from notifications.models import Notification, NotificationSettings

from .conftest import PHONE

pytestmark = pytest.mark.django_db


def form(appointment_or_none, world, **changes):
    starts = timezone.localtime(changes.pop("starts_at", timezone.now() + dt.timedelta(days=2)))
    data = {
        "company": world.alice.pk, "customer": world.customer.pk, "status": "scheduled",
        "starts_at_0": starts.strftime("%Y-%m-%d"), "starts_at_1": starts.strftime("%H:%M:%S"),
        "ends_at_0": starts.strftime("%Y-%m-%d"), "ends_at_1": (starts + dt.timedelta(minutes=30)).strftime("%H:%M:%S"),
        "notes": "", "metadata": "{}", "error_message": "",
    }  # fmt: skip
    for prefix in ("reminders", "notifications"):
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    data.update(changes)
    return data


def test_it_tells_the_customer_of_an_appointment_booked_and_moved_in_the_admin(world, admin_client,
                                                                              django_capture_on_commit_callbacks):  # fmt: skip
    from askpro.models import Appointment

    with django_capture_on_commit_callbacks(execute=True):
        answer = admin_client.post(reverse("admin:askpro_appointment_add"), form(None, world))
    assert answer.status_code == 302, answer.context["adminform"].errors if answer.context else answer
    appointment = Appointment.objects.filter(customer=world.customer).get()
    assert appointment.reminders.filter(status="planned").count() == 2
    assert "ist gebucht" in world.texts()[-1]["Body"] and world.texts()[-1]["To"] == PHONE
    page = admin_client.get(reverse("admin:askpro_appointment_change", args=[appointment.pk]))
    assert page.status_code == 200 and b"reminder plan" in page.content.lower()
    moved = timezone.now() + dt.timedelta(days=3)
    data = form(appointment, world, starts_at=moved)
    data.update({"reminders-TOTAL_FORMS": "2", "reminders-INITIAL_FORMS": "2",
                 "notifications-TOTAL_FORMS": "1", "notifications-INITIAL_FORMS": "1"})  # fmt: skip
    for i, row in enumerate(appointment.reminders.all()):
        data.update({f"reminders-{i}-id": row.pk, f"reminders-{i}-appointment": appointment.pk})
    note = appointment.notifications.get()
    data.update({"notifications-0-id": note.pk, "notifications-0-appointment": appointment.pk})
    with django_capture_on_commit_callbacks(execute=True):
        answer = admin_client.post(reverse("admin:askpro_appointment_change", args=[appointment.pk]), data)
    assert answer.status_code == 302
    assert sorted(appointment.reminders.values_list("generation", "status")) == [
        (1, "cancelled"), (1, "cancelled"), (2, "planned"), (2, "planned")
    ]  # fmt: skip
    assert "verlegt" in world.texts()[-1]["Body"]


def test_it_refuses_settings_it_cannot_read(world, admin_client):
    row = NotificationSettings.objects.get(company=world.alice)
    answer = admin_client.post(
        reverse("admin:notifications_notificationsettings_change", args=[row.pk]),
        {"company": world.alice.pk, "reminders_enabled": "on", "reminder_offsets": "24h, tomorrow",
         "channel_order": "sms, fax", "whatsapp_templates": '{"reminder": "nope"}'},
    )  # fmt: skip
    assert answer.status_code == 200
    errors = answer.context["adminform"].form.errors
    assert "tomorrow" in str(errors["reminder_offsets"]) and "fax" in str(errors["channel_order"])
    assert "whatsapp_templates" in errors


def test_it_lists_the_messages_with_status_and_cost_and_shows_the_delivery_rate(world, admin_client):
    appointment = world.appointment(hours=30)
    services.deliver(appointment, "confirmation", "test:admin")
    sid = next(iter(world.twilio.messages))
    while world.twilio.advance(sid):
        pass
    page = admin_client.get(reverse("admin:notifications_notification_changelist"))
    assert page.status_code == 200 and b"delivered" in page.content and PHONE.encode() in page.content
    dashboard = admin_client.get(reverse("admin:dashboard"))
    assert dashboard.status_code == 200
    sms = next(r for r in dashboard.context["delivery"] if r["channel"] == "sms")
    assert (sms["accepted"], sms["delivered"], sms["rate"]) == (1, 1, 100.0)
    assert b'data-testid="delivery-rates"' in dashboard.content
    assert Notification.objects.get().price is not None
