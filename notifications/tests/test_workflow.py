"""Confirmations, reminders and replies through the real pipeline, the messaging and calcom
operations and their sandboxes (Celery eager: the tasks run where they are queued)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from askpro.models import Appointment, Customer
from mcp_core.api_keys import api_key_authenticate
from mcp_core.pipeline import call_operation
from mcp_servers.calcom.tests.conftest import weekday_at
from mcp_servers.messaging.models import OptOut
from notifications import services
from notifications.models import Notification, NotificationSettings, Reminder, parse_channels, parse_offsets

from .conftest import EMAIL, EVENT_TYPE, PHONE

pytestmark = pytest.mark.django_db


def book(key: str):
    start = weekday_at(10)
    params = {"event_type_id": EVENT_TYPE, "start": start.isoformat(), "name": "Jane Roe", "email": EMAIL}
    answer = call_operation("calcom", "create_booking", params, principal=api_key_authenticate(key))
    assert answer.success, answer.error
    return Appointment.objects.get(pk=answer.data["appointment_id"])


def make_due(appointment: Appointment) -> None:
    Reminder.objects.filter(appointment=appointment, status="planned").update(
        due_at=timezone.now() - dt.timedelta(seconds=1)
    )


def test_it_confirms_a_booking_and_plans_one_reminder_per_offset(
    world, alice_key, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        appointment = book(alice_key)
    [text] = world.texts()
    assert text["To"] == PHONE and "ist gebucht" in text["Body"]
    plan = list(
        appointment.reminders.order_by("-offset_minutes").values_list("offset_minutes", "status", "due_at")
    )
    assert [(o, s) for o, s, _ in plan] == [(1440, "planned"), (120, "planned")]
    assert plan[0][2] == appointment.starts_at - dt.timedelta(hours=24)
    sent = Notification.objects.get(appointment=appointment)
    assert (sent.kind, sent.channel, sent.status, sent.service) == (
        "confirmation",
        "sms",
        "sent",
        "messaging",
    )
    # The booking announced again (Cal.com's BOOKING_CREATED after our own booking): no second text.
    with django_capture_on_commit_callbacks(execute=True):
        from mcp_core import signals

        signals.appointment(appointment.pk, appointment.company_id, "booked", "calcom_webhook")
    assert len(world.texts()) == 1
    assert appointment.reminders.count() == 2


def test_it_cancels_the_old_reminders_and_plans_new_ones_on_a_reschedule(world, alice_key,
                                                                         django_capture_on_commit_callbacks):  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        appointment = book(alice_key)
        new_start = weekday_at(11)
        answer = call_operation("calcom", "reschedule_booking",
                                {"booking_uid": appointment.calcom_booking_uid, "start": new_start.isoformat()},
                                principal=api_key_authenticate(alice_key))  # fmt: skip
    assert answer.success, answer.error
    rows = list(
        appointment.reminders.order_by("generation", "-offset_minutes").values_list(
            "generation", "status", "starts_at"
        )
    )
    assert [(g, s) for g, s, _ in rows] == [
        (1, "cancelled"),
        (1, "cancelled"),
        (2, "planned"),
        (2, "planned"),
    ]
    assert {s for g, _, s in rows if g == 2} == {new_start}
    assert "verlegt" in world.texts()[-1]["Body"]
    # Only the new generation is ever sent.
    Reminder.objects.filter(appointment=appointment).update(due_at=timezone.now() - dt.timedelta(seconds=1))
    services.sweep()
    reminders = [t for t in world.texts() if "Erinnerung" in t["Body"]]
    assert len(reminders) == 2
    assert set(appointment.reminders.filter(status="sent").values_list("generation", flat=True)) == {2}


def test_it_sends_each_due_reminder_once_however_often_it_is_swept(world, django_capture_on_commit_callbacks):
    appointment = world.appointment(hours=30)
    services.plan_reminders(appointment.pk)
    make_due(appointment)
    Reminder.objects.filter(appointment=appointment, offset_minutes=120).update(
        due_at=timezone.now() + dt.timedelta(hours=1)
    )
    first = services.sweep()
    again = services.sweep()
    assert (first["queued"], again["queued"]) == (1, 0)
    # A duplicate task for an id already sent changes nothing.
    sent = Reminder.objects.get(appointment=appointment, offset_minutes=1440)
    assert services.send_reminders([sent.pk]) == {"taken": 1}
    reminders = [t for t in world.texts() if "Erinnerung" in t["Body"]]
    assert len(reminders) == 1 and reminders[0]["To"] == PHONE and "JA" in reminders[0]["Body"]
    sent.refresh_from_db()
    assert (sent.status, sent.channel, sent.attempts) == ("sent", "sms", 1)
    assert Reminder.objects.get(appointment=appointment, offset_minutes=120).status == "planned"


def test_it_sends_again_after_a_worker_died_without_texting_twice(world, settings):
    """A row left in `sending` by a dead worker is handed out again after its lease; the retry
    reaches messaging with the same idempotency key, which answers with the message already sent."""
    appointment = world.appointment(hours=30)
    services.plan_reminders(appointment.pk)
    make_due(appointment)
    reminder = Reminder.objects.get(appointment=appointment, offset_minutes=1440)
    Reminder.objects.filter(appointment=appointment, offset_minutes=120).delete()
    services.sweep(dispatch=lambda ids: None)  # handed out, the task lost
    assert services.claim([reminder.pk], timezone.now()) == [reminder.pk]
    # The worker sent, then died before writing it down.
    services.deliver(appointment, "reminder", reminder.idempotency_base, reminder=reminder)
    Reminder.objects.filter(pk=reminder.pk).update(claimed_at=timezone.now() - dt.timedelta(seconds=121))
    assert services.sweep()["requeued"] == 1
    reminder.refresh_from_db()
    assert (reminder.status, reminder.attempts) == ("sent", 2)
    assert len([t for t in world.texts() if "Erinnerung" in t["Body"]]) == 1


def test_it_retries_a_rate_limited_send_later_on_the_same_channel(world, settings):
    appointment = world.appointment(hours=30)
    services.plan_reminders(appointment.pk)
    make_due(appointment)
    Reminder.objects.filter(appointment=appointment, offset_minutes=120).delete()
    world.twilio.inject_fault(status=429, path=r"/Messages\.json$", count=1)
    services.sweep()
    reminder = Reminder.objects.get(appointment=appointment)
    assert reminder.status == "planned" and reminder.due_at > timezone.now() + dt.timedelta(seconds=200)
    assert Notification.objects.get(reminder=reminder).status == "failed"
    make_due(appointment)
    services.sweep()
    reminder.refresh_from_db()
    assert (reminder.status, reminder.attempts, reminder.channel) == ("sent", 2, "sms")
    assert Notification.objects.get(reminder=reminder).status == "sent"


def test_it_falls_back_through_the_channels_and_records_why(world):
    """WhatsApp without a template outside the 24-hour window, then an opted-out SMS number, then
    email: each refusal recorded, the message sent on the first channel that takes it."""
    NotificationSettings.objects.filter(company=world.alice).update(channel_order="whatsapp, sms, email")
    OptOut.objects.create(company=world.alice, number=PHONE, keyword="STOP")
    appointment = world.appointment(hours=30)
    outcome = services.deliver(appointment, "reminder", "test:fallback")
    rows = {n.channel: n for n in Notification.objects.filter(appointment=appointment)}
    assert rows["whatsapp"].status == "refused" and rows["whatsapp"].error_code == "conflict"
    assert rows["sms"].status == "refused" and "opted" in rows["sms"].error_message
    assert outcome.result == "sent" and outcome.channel == "email"
    assert (rows["email"].status, rows["email"].service, rows["email"].recipient) == ("sent", "email", EMAIL)
    [mail] = world.smtp.received(EMAIL)
    assert mail.header("Subject")
    # The same reminder again (a retry): the email server answers with the email it sent.
    assert services.deliver(appointment, "reminder", "test:fallback").result == "sent"
    assert len(world.smtp.received(EMAIL)) == 1
    assert world.texts() == []


def test_it_passes_a_suppressed_address_over_and_follows_email_delivery_reports(world):
    from mcp_servers.mail.services import suppress

    NotificationSettings.objects.filter(company=world.alice).update(channel_order="email, sms")
    appointment = world.appointment(hours=30)
    outcome = services.deliver(appointment, "confirmation", "test:email")
    assert (outcome.result, outcome.channel) == ("sent", "email")
    row = Notification.objects.get(appointment=appointment, channel="email")
    from mcp_servers.mail.models import OutboundEmail
    from mcp_servers.mail.services import apply_status

    apply_status(OutboundEmail.objects.get(pk=row.message_id), "delivered")
    row.refresh_from_db()
    assert row.status == "delivered"
    suppress(world.alice, EMAIL, "hard_bounce", detail="test")
    outcome = services.deliver(appointment, "reminder", "test:suppressed")
    refused = Notification.objects.get(appointment=appointment, channel="email", kind="reminder")
    assert refused.status == "refused" and "suppress" in refused.error_message
    assert (outcome.result, outcome.channel) == ("sent", "sms")


def test_it_puts_the_customers_own_channel_first():
    from askpro.models import Customer

    conf = NotificationSettings(channel_order="sms, email")
    assert services.channel_order(Customer(preferred_channel="email"), conf) == ["email", "sms"]
    assert services.channel_order(Customer(preferred_channel="whatsapp"), conf) == [
        "whatsapp",
        "sms",
        "email",
    ]
    assert services.channel_order(None, conf) == ["sms", "email"]


def test_it_sends_a_whatsapp_template_when_the_tenant_has_one(world):
    template = world.twilio.add_template()
    NotificationSettings.objects.filter(company=world.alice).update(
        channel_order="whatsapp, sms", whatsapp_templates={"reminder": template}
    )
    appointment = world.appointment(hours=30)
    assert services.deliver(appointment, "reminder", "test:template").channel == "whatsapp"
    [text] = world.texts()
    assert text["ContentSid"] == template and text["To"] == f"whatsapp:{PHONE}"
    assert '"1": "Jane Roe"' in text["ContentVariables"]


@pytest.mark.parametrize(("reply", "status", "upstream"), [("JA", "confirmed", "accepted"),
                                                          ("confirm", "confirmed", "accepted"),
                                                          ("cancel", "cancelled", "cancelled"),
                                                          ("Absagen!", "cancelled", "cancelled")])  # fmt: skip
def test_it_changes_the_booking_in_calcom_when_the_customer_replies(world, alice_key, reply, status, upstream,
                                                                    django_capture_on_commit_callbacks):  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        appointment = book(alice_key)
    assert world.calcom.bookings[appointment.calcom_booking_uid]["status"] == "pending"
    make_due(appointment)
    services.sweep()
    world.inbound(reply)
    assert world.answers[-1].status_code == 202
    appointment.refresh_from_db()
    assert appointment.status == status
    assert world.calcom.bookings[appointment.calcom_booking_uid]["status"] == upstream
    if status == "cancelled":
        assert not appointment.reminders.filter(status__in=["planned", "queued"]).exists()
        told = Notification.objects.get(appointment=appointment, kind="cancellation", channel="sms")
        if reply == "cancel":
            # CANCEL is also Twilio's opt-out keyword: the customer is opted out, so no SMS.
            assert told.status == "refused" and "opted" in told.error_message
        else:
            assert told.status == "sent" and "abgesagt" in world.texts()[-1]["Body"]
    else:
        assert "confirmed_by_customer_at" in appointment.metadata


def test_it_ignores_replies_from_numbers_it_sent_no_reminder_to(
    world, alice_key, bob, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        appointment = book(alice_key)
    make_due(appointment)
    services.sweep()
    world.inbound("ABSAGEN", number="+4915199999999")
    # The same number at another tenant has no reminder from Alice's salon.
    assert services.handle_reply(bob.pk, PHONE, "ABSAGEN", 1).startswith("cancel: no open reminder")
    appointment.refresh_from_db()
    assert appointment.status == "scheduled"
    assert world.calcom.bookings[appointment.calcom_booking_uid]["status"] == "pending"


def test_it_records_delivery_and_cost_from_the_status_callbacks(world):
    appointment = world.appointment(hours=30)
    services.deliver(appointment, "confirmation", "test:cost")
    row = Notification.objects.get(appointment=appointment)
    sid = world.texts() and world.twilio.requests_to(r"/Messages\.json$")
    assert sid
    twilio_sid = next(iter(world.twilio.messages))
    while world.twilio.advance(twilio_sid):
        pass
    row.refresh_from_db()
    assert row.status == "delivered" and row.price is not None and row.price_unit == "USD"


def test_it_skips_reminders_of_an_appointment_that_was_cancelled_meanwhile(world):
    appointment = world.appointment(hours=30)
    services.plan_reminders(appointment.pk)
    make_due(appointment)
    services.sweep(dispatch=lambda ids: None)
    Appointment.objects.filter(pk=appointment.pk).update(status="cancelled")
    ids = list(appointment.reminders.values_list("pk", flat=True))
    assert services.send_reminders(ids) == {"cancelled": 2}
    assert world.texts() == []


def test_it_plans_again_for_an_appointment_active_again_after_a_cancellation(world):
    appointment = world.appointment(hours=30)
    services.plan_reminders(appointment.pk)
    Appointment.objects.filter(pk=appointment.pk).update(status="cancelled")
    assert services.plan_reminders(appointment.pk) == "cancelled 2"
    Appointment.objects.filter(pk=appointment.pk).update(status="confirmed")
    services.plan_reminders(appointment.pk)
    assert sorted(appointment.reminders.values_list("generation", "status")) == [
        (1, "cancelled"), (1, "cancelled"), (2, "planned"), (2, "planned")
    ]  # fmt: skip
    assert services.plan_reminders(appointment.pk) == "unchanged"


def test_it_plans_nothing_for_offsets_already_past(world):
    appointment = world.appointment(hours=1)
    services.plan_reminders(appointment.pk)
    [row] = appointment.reminders.all()
    assert row.status == "skipped"
    assert services.plan_reminders(appointment.pk) == "unchanged"


@pytest.mark.parametrize(("text", "minutes"), [("24h, 2h", [1440, 120]), ("2d,30m,2d", [2880, 30]), ("", [])])
def test_it_reads_offsets(text, minutes):
    assert parse_offsets(text) == minutes


@pytest.mark.parametrize("text", ["24", "0h", "31d", "2 weeks"])
def test_it_refuses_offsets_it_cannot_read(text):
    with pytest.raises(ValueError, match="offset|between"):
        parse_offsets(text)


def test_it_refuses_an_unknown_channel():
    assert parse_channels("SMS, email, sms") == ["sms", "email"]
    with pytest.raises(ValueError, match="fax"):
        parse_channels("sms, fax")


def test_it_follows_calcom_webhooks_booked_moved_and_cancelled(
    world, client, django_capture_on_commit_callbacks
):
    from mcp_servers.webhooks.tests.conftest import CALCOM_SECRET, calcom_body, post, signed

    def deliver(trigger: str, payload: dict, created_at: str) -> None:
        body = calcom_body(trigger, payload, created_at)
        with django_capture_on_commit_callbacks(execute=True):
            answer = post(client, "calcom", body, signed("calcom", body, CALCOM_SECRET))
        assert answer.status_code in (200, 202), answer.content

    def booking(uid: str, start: dt.datetime, **extra) -> dict:
        return {"uid": uid, "bookingId": 7001, "eventTypeId": EVENT_TYPE, "status": "ACCEPTED",
                "startTime": start.isoformat(), "endTime": (start + dt.timedelta(minutes=30)).isoformat(),
                "attendees": [{"name": "Jane Roe", "email": EMAIL, "phoneNumber": PHONE}], **extra}  # fmt: skip

    from django.test import override_settings

    start = weekday_at(10)
    with override_settings(CALCOM_WEBHOOK_SECRET=CALCOM_SECRET):
        deliver("BOOKING_CREATED", booking("wh_1", start), "2026-11-26T10:00:00.000Z")
        appointment = Appointment.objects.get(calcom_booking_uid="wh_1")
        assert appointment.reminders.filter(status="planned").count() == 2
        deliver("BOOKING_CREATED", booking("wh_1", start), "2026-11-26T10:00:00.000Z")  # redelivered
        deliver(
            "BOOKING_RESCHEDULED",
            booking("wh_2", weekday_at(12), rescheduleUid="wh_1"),
            "2026-11-26T10:05:00.000Z",
        )
        assert appointment.reminders.filter(status="planned", generation=2).count() == 2
        deliver("BOOKING_CANCELLED", booking("wh_2", weekday_at(12)), "2026-11-26T10:10:00.000Z")
    bodies = [t["Body"] for t in world.texts()]
    assert [("gebucht" in b, "verlegt" in b, "abgesagt" in b) for b in bodies] == [
        (True, False, False), (False, True, False), (False, False, True)
    ]  # fmt: skip
    assert not appointment.reminders.filter(status="planned").exists()


def test_it_is_in_the_beat_schedule():
    from dashboard.schedule import SCHEDULE

    assert any(p.task == "notifications.sweep" and p.minute == "*" for p in SCHEDULE)


def test_it_calls_the_servers_as_a_system_caller_bound_to_the_tenant(world, bob):
    from mcp_core.models import AuditEntry
    from mcp_core.pipeline import call_for_tenant

    answer = call_for_tenant("messaging", "send_sms", {"to": PHONE, "body": "x"}, tenant_id=world.alice.pk,
                             caller="reminders", idempotency_key="k1")  # fmt: skip
    assert answer.success and answer.metadata["tenant_id"] == world.alice.pk
    entry = AuditEntry.objects.filter(service="messaging", operation="send_sms").latest("pk")
    assert entry.principal == "system:reminders" and entry.tenant_id == world.alice.pk
    # Bound to Alice: it cannot act for Bob, and has no scope beyond the service's write.
    from mcp_core.contracts import MCPRequest, Principal
    from mcp_core.pipeline import route

    principal = Principal(kind="system", name="system:reminders", scopes=frozenset({"messaging:write"}),
                          tenant_id=world.alice.pk)  # fmt: skip
    other = route(MCPRequest("messaging", "list_messages", {}, principal, tenant=bob.slug))
    assert other.error_code == "forbidden"
    assert call_for_tenant("messaging", "set_opt_out", {"number": PHONE, "opted_out": True},
                           tenant_id=world.alice.pk, caller="reminders").success  # fmt: skip


def test_a_chunk_of_reminders_takes_the_same_statements_however_many_it_holds(world):
    """Nothing is loaded row by row (a field left out of REMINDER_FIELDS would be: one query per
    reminder), whether a chunk holds 3 reminders or 12 (the first chunk, of 1, fills the caches)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = []
    for size in (1, 3, 12):
        customers = [Customer.objects.create(company=world.alice, name=f"C{size}-{i}", phone=f"+4915112{size:02d}{i:04d}",
                                             language="en") for i in range(size)]  # fmt: skip
        starts = timezone.now() + dt.timedelta(hours=30)
        appointments = [Appointment.objects.create(company=world.alice, customer=c, starts_at=starts,
                                                   ends_at=starts + dt.timedelta(minutes=30)) for c in customers]  # fmt: skip
        for appointment in appointments:
            services.plan_reminders(appointment.pk)
            make_due(appointment)
        ids = list(
            Reminder.objects.filter(appointment__in=appointments, offset_minutes=1440).values_list(
                "pk", flat=True
            )
        )
        Reminder.objects.filter(pk__in=ids).update(status="queued")
        with CaptureQueriesContext(connection) as queries:
            assert services.send_reminders(ids) == {"sent": size}
        counts.append(len(queries))
    assert counts[1] == counts[2], counts
    texts = [t for t in world.texts() if "appointment" in t["Body"].lower()]
    assert len(texts) == 16 and {t["To"] for t in texts} >= {"+4915112120011"}
