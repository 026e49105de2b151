"""Each operation against the SMTP sandbox: what the customer received, what was recorded."""

from __future__ import annotations

import datetime as dt

import icalendar
import pytest

from askpro.models import Appointment, Invoice
from mcp_servers.mail.models import CalendarSequence, OutboundEmail, Suppression

pytestmark = pytest.mark.django_db


def calendar_event(received) -> tuple[str, icalendar.Event]:
    cal = icalendar.Calendar.from_ical(received.ics())
    [event] = cal.walk("VEVENT")
    return str(cal["METHOD"]), event


# --- send_email: templates ---


def test_it_sends_a_confirmation_with_both_parts_and_an_invitation_in_the_customers_language(world):
    appointment = world.appointment
    answer = world.call("send_email", {"to": "kunde@example.com", "template": "confirmation",
                                       "appointment_id": appointment.pk})  # fmt: skip
    assert answer.success, answer.error
    data = answer.data
    assert (data["status"], data["to"], data["template"]) == ("sent", "kunde@example.com", "confirmation")
    [received] = world.sandbox.received("kunde@example.com")
    assert received.auth_user == world.alice_account.smtp_username
    assert received.header("From") == "Alice's Salon Team <termine@alice-salon.example>"
    assert received.header("Reply-To") == "hello@alice-salon.example"
    assert received.header("Message-ID").strip() == data["message_id"]
    assert received.header("Subject").startswith("Terminbestätigung: Consultation am ")
    assert "Guten Tag alice-salon Customer," in received.text()
    assert "<h1" in received.html() and "Ihr Termin ist bestätigt." in received.html()
    assert "#1f6feb" in received.html()  # the tenant's brand colour
    method, event = calendar_event(received)
    assert method == "REQUEST"
    assert str(event["UID"]) == f"appointment-{appointment.pk}@alice-salon.askpro"
    assert int(event["SEQUENCE"]) == 0 and str(event["STATUS"]) == "CONFIRMED"
    assert event.decoded("DTSTART") == appointment.starts_at.replace(microsecond=0)
    assert str(event["ORGANIZER"]) == "mailto:termine@alice-salon.example"
    assert str(event["ATTENDEE"]) == "mailto:kunde@example.com"
    assert received.part("text/calendar")["Content-Type"].params["method"] == "REQUEST"
    row = OutboundEmail.objects.get(pk=data["email_id"])
    assert (row.company, row.language, row.ics_sequence, row.ics_method) == (world.alice, "de", 0, "REQUEST")
    assert row.customer_id == appointment.customer_id and row.attempts == 1


def test_it_writes_english_for_a_customer_who_chose_it_and_when_asked(world):
    customer = world.customer
    customer.language = "en"
    customer.save()
    world.call(
        "send_email", {"to": "c@example.com", "template": "reminder", "appointment_id": world.appointment.pk}
    )
    [received] = world.sandbox.received("c@example.com")
    assert received.header("Subject").startswith("Reminder: your appointment on ")
    assert "Hello alice-salon Customer," in received.text() and "Kind regards" in received.text()
    assert received.header("Content-Language") == "en"
    answer = world.call("send_email", {"to": "d@example.com", "template": "reminder",
                                       "appointment_id": world.appointment.pk, "language": "de"})  # fmt: skip
    assert answer.data["email"]["language"] == "de"
    assert world.sandbox.received("d@example.com")[0].header("Subject").startswith("Erinnerung:")


def test_it_falls_back_to_the_companys_language(world):
    world.alice.language = "en"
    world.alice.save()
    world.call(
        "send_email",
        {"to": "c@example.com", "template": "confirmation", "appointment_id": world.appointment.pk},
    )
    assert world.sandbox.received()[0].header("Subject").startswith("Appointment confirmed:")


def test_it_keeps_the_uid_and_raises_the_sequence_with_every_update_and_cancels_with_it(world):
    appointment = world.appointment
    sequences = []
    for template in ("confirmation", "reminder", "rescheduled", "cancellation"):
        answer = world.call("send_email", {"to": "c@example.com", "template": template,
                                           "appointment_id": appointment.pk})  # fmt: skip
        assert answer.success, answer.error
    messages = world.sandbox.received("c@example.com")
    for received in messages:
        method, event = calendar_event(received)
        sequences.append((method, int(event["SEQUENCE"]), str(event["STATUS"])))
        assert str(event["UID"]) == f"appointment-{appointment.pk}@alice-salon.askpro"
    assert sequences == [
        ("REQUEST", 0, "CONFIRMED"),
        ("REQUEST", 0, "CONFIRMED"),  # a reminder changes nothing in the calendar
        ("REQUEST", 1, "CONFIRMED"),
        ("CANCEL", 2, "CANCELLED"),
    ]
    assert messages[3].header("Subject").startswith("Termin abgesagt:")
    assert CalendarSequence.objects.get(appointment=appointment).sequence == 2


def test_it_sends_an_invoice_without_an_invitation(world):
    invoice = Invoice.objects.create(company=world.alice, customer=world.customer, number="2026-0007",
                                     total="49.50", due_date=dt.date(2026, 12, 24),
                                     metadata={"hosted_invoice_url": "https://pay.example/in_1"})  # fmt: skip
    answer = world.call(
        "send_email", {"to": "c@example.com", "template": "invoice_sent", "invoice_id": invoice.pk}
    )
    assert answer.success, answer.error
    [received] = world.sandbox.received()
    assert received.header("Subject") == "Ihre Rechnung 2026-0007 von Alice's Salon"
    assert "49,50 EUR" in received.text() and "24. Dezember 2026" in received.text()
    assert 'href="https://pay.example/in_1"' in received.html()
    assert received.ics() is None


def test_it_sends_the_callers_own_html_part_when_given(world):
    answer = world.call("send_email", {"to": "c@example.com", "subject": "Angebot", "text": "Nur heute.",
                                       "html": "<p><strong>Nur heute.</strong></p>"})  # fmt: skip
    assert answer.success, answer.error
    [received] = world.sandbox.received()
    assert "<p><strong>Nur heute.</strong></p>" in received.html() and received.text().startswith(
        "Nur heute."
    )


def test_it_sends_a_free_form_email_in_the_branded_frame(world):
    world.alice_account.footer = "Alice's Salon · Hauptstraße 1 · Berlin"
    world.alice_account.save()
    answer = world.call("send_email", {"to": "c@example.com", "subject": "Neue Öffnungszeiten",
                                       "text": "Ab Montag öffnen wir um 8 Uhr."})  # fmt: skip
    assert answer.success and answer.data["template"] is None
    [received] = world.sandbox.received()
    assert received.header("Subject") == "Neue Öffnungszeiten"
    assert received.text().startswith("Ab Montag öffnen wir um 8 Uhr.") and "Hauptstraße 1" in received.text()
    assert "<p>Ab Montag öffnen wir um 8 Uhr.</p>" in received.html()


def test_it_sends_once_for_a_repeated_idempotency_key(world):
    params = {"to": "c@example.com", "template": "confirmation", "appointment_id": world.appointment.pk}
    first = world.call("send_email", params, idempotency_key="confirm-1")
    again = world.call("send_email", params, idempotency_key="confirm-1")
    assert first.data["email_id"] == again.data["email_id"] and again.data["status"] == "sent"
    assert len(world.sandbox.received()) == 1
    other = world.call("send_email", {**params, "to": "x@example.com"}, idempotency_key="confirm-1")
    assert other.error["code"] == "conflict" and "idempotency_key" in other.error["message"]


def test_it_refuses_a_suppressed_address_and_never_mails_it(world):
    Suppression.objects.create(company=world.alice, address="gone@example.com", reason="hard_bounce")
    answer = world.call("send_email", {"to": "Gone@Example.com", "subject": "Hallo", "text": "x"})
    assert answer.error["code"] == "conflict"
    assert answer.error["details"]["reason"] == "suppressed" and answer.error["details"]["field"] == "to"
    assert "suppression list" in answer.error["message"]
    assert world.sandbox.received() == []
    row = OutboundEmail.objects.get(pk=answer.error["details"]["email_id"])
    assert row.status == "suppressed" and row.sent_at is None
    # Bob's list is his own: the same address is mailed for him.
    assert world.call("send_email", {"to": "gone@example.com", "subject": "Hallo", "text": "x"},
                      key=world.bob_key).success  # fmt: skip


# --- reading ---


def test_it_shows_one_email_and_lists_them_filtered_and_paged(world):
    ids = []
    for n in range(3):
        ids.append(
            world.call("send_email", {"to": f"c{n}@example.com", "subject": f"s{n}", "text": "t"}).data[
                "email_id"
            ]
        )
    status = world.call("get_email_status", {"email_id": ids[0]})
    assert status.data["email"]["to"] == "c0@example.com" and status.data["email"]["transport"] == "smtp"
    page = world.call("list_emails", {"limit": 2})
    assert [e["id"] for e in page.data["emails"]] == [ids[2], ids[1]] and page.data["next_cursor"]
    rest = world.call("list_emails", {"limit": 2, "cursor": page.data["next_cursor"]})
    assert [e["id"] for e in rest.data["emails"]] == [ids[0]] and rest.data["next_cursor"] is None
    assert [e["id"] for e in world.call("list_emails", {"to": "C1@example.com"}).data["emails"]] == [ids[1]]
    assert world.call("list_emails", {"status": "bounced"}).data["emails"] == []


def test_it_keeps_each_tenants_emails_and_suppressions_to_itself(world):
    mine = world.call("send_email", {"to": "c@example.com", "subject": "s", "text": "t"}).data["email_id"]
    Suppression.objects.create(company=world.alice, address="gone@example.com", reason="complaint")
    other = world.call("get_email_status", {"email_id": mine}, key=world.bob_key)
    assert other.error["code"] == "not_found" and other.error["details"]["field"] == "email_id"
    assert world.call("list_emails", {}, key=world.bob_key).data["emails"] == []
    by_appointment = world.call("list_emails", {"appointment_id": world.appointment.pk}, key=world.bob_key)
    assert (
        by_appointment.error["code"] == "not_found"
        and by_appointment.error["details"]["field"] == "appointment_id"
    )
    assert world.call("list_suppressions", {}, key=world.bob_key).data["suppressions"] == []
    removed = world.call("remove_suppression", {"address": "gone@example.com"}, key=world.bob_key)
    assert removed.data["removed"] is False and Suppression.objects.filter(company=world.alice).exists()
    foreign = world.call("send_email", {"to": "c@example.com", "template": "confirmation",
                                        "appointment_id": world.appointment.pk}, key=world.bob_key)  # fmt: skip
    assert foreign.error["code"] == "not_found" and foreign.error["details"]["field"] == "appointment_id"
    preview = world.call("preview_template", {"template": "reminder", "appointment_id": world.appointment.pk},
                         key=world.bob_key)  # fmt: skip
    assert preview.error["code"] == "not_found"
    assert len(world.sandbox.received()) == 1


# --- suppressions ---


def test_it_lists_and_removes_suppressions_and_then_mails_again(world):
    Suppression.objects.create(company=world.alice, address="a@example.com", reason="hard_bounce")
    Suppression.objects.create(company=world.alice, address="b@example.com", reason="complaint")
    listed = world.call("list_suppressions", {})
    assert [s["address"] for s in listed.data["suppressions"]] == ["b@example.com", "a@example.com"]
    assert [s["address"] for s in world.call("list_suppressions", {"reason": "hard_bounce"}).data["suppressions"]] == ["a@example.com"]  # fmt: skip
    assert world.call("remove_suppression", {"address": "A@example.com"}).data == {"address": "a@example.com", "removed": True}  # fmt: skip
    assert world.call("remove_suppression", {"address": "a@example.com"}).data["removed"] is False
    assert (
        world.call("send_email", {"to": "a@example.com", "subject": "s", "text": "t"}).data["status"]
        == "sent"
    )


# --- preview and connection ---


def test_it_previews_every_template_in_both_languages_without_sending(world):
    for template in ("confirmation", "reminder", "cancellation", "rescheduled", "invoice_sent"):
        for language, word in (("de", "Guten Tag"), ("en", "Hello")):
            shown = world.call("preview_template", {"template": template, "language": language})
            assert shown.success, shown.error
            assert shown.data["sample"] is True and shown.data["text"].startswith(word)
            assert shown.data["html"].startswith("<!DOCTYPE html>") and shown.data["subject"]
    real = world.call(
        "preview_template", {"template": "cancellation", "appointment_id": world.appointment.pk}
    )
    assert real.data["sample"] is False and "alice-salon Customer" in real.data["text"]
    assert "METHOD:CANCEL" in real.data["ics"] and "SEQUENCE:0" in real.data["ics"]
    assert world.sandbox.received() == [] and not OutboundEmail.objects.exists()


def test_it_tests_the_connection_by_logging_in(world):
    answer = world.call("test_connection")
    assert answer.success, answer.error
    assert answer.data["ok"] is True and answer.data["checked"] == "smtp_login"
    assert "AskPro SMTP sandbox" in answer.data["greeting"]
    assert (world.alice_account.smtp_username, True) in world.sandbox.logins
    assert world.sandbox.received() == []


def test_it_builds_a_provider_connection_through_anymail(world):
    from mcp_servers.mail import client

    world.alice_account.provider, world.alice_account.api_key = "postmark", "pm-server-token"
    transport = client.transport_for(world.alice_account)
    backend = client.connection(transport, 5.0)
    assert (
        type(backend).__module__ == "anymail.backends.postmark" and backend.server_token == "pm-server-token"
    )
    assert "pm-server-token" not in repr(transport)
    world.alice_account.save()
    answer = world.call("test_connection")
    assert answer.data["ok"] is None and answer.data["transport"] == "postmark"


def test_it_is_healthy_when_the_tenants_smtp_servers_answer(world):
    from mcp_core.health import HealthStatus
    from mcp_core.registry import get_registry
    from mcp_servers.mail.server import EmailServer

    # Registered, so mcp_health_check and /health/ run it with the others (in threads, which
    # cannot see this test's uncommitted rows: the check itself is called here).
    result = get_registry().get_server("email").health()
    assert result.status == HealthStatus.HEALTHY and "2 SMTP server(s) answered" in result.detail
    world.alice_account.smtp_password = "wrong"
    world.alice_account.save()
    result = EmailServer().health()
    assert result.status == HealthStatus.DEGRADED and "alice-salon" in result.detail
    assert "wrong" not in result.detail


def test_it_is_not_configured_without_an_account(alice, alice_key):
    from mcp_core.api_keys import api_key_authenticate
    from mcp_core.pipeline import call_operation

    answer = call_operation("email", "send_email", {"to": "c@example.com", "subject": "s", "text": "t"},
                            principal=api_key_authenticate(alice_key))  # fmt: skip
    assert answer.error["code"] == "not_configured" and "Email accounts" in answer.error["message"]
    assert call_operation("email", "list_emails", {}, principal=api_key_authenticate(alice_key)).success


def test_it_writes_the_appointments_start_in_the_companys_time_zone(world):
    appointment = world.appointment
    Appointment.objects.filter(pk=appointment.pk).update(
        starts_at=dt.datetime(2026, 12, 11, 9, 0, tzinfo=dt.UTC),
        ends_at=dt.datetime(2026, 12, 11, 9, 30, tzinfo=dt.UTC),
    )
    world.call(
        "send_email", {"to": "c@example.com", "template": "confirmation", "appointment_id": appointment.pk}
    )
    [received] = world.sandbox.received()
    assert "Freitag, 11. Dezember 2026, 10:00 Uhr – 10:30" in received.text()
