"""Each operation against the Twilio sandbox: what Twilio was asked, what was recorded."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from urllib.parse import parse_qs

import pytest
from django.utils import timezone

from mcp_servers.messaging import services
from mcp_servers.messaging.models import Message, OptOut
from mcp_servers.messaging.sandbox import parse_form

from .conftest import ALICE_SENDER, CUSTOMER, CUSTOMER_NATIONAL

pytestmark = pytest.mark.django_db
SERVICE_SID = "MG" + "a" * 32


def sent_forms(sandbox) -> list[dict[str, str]]:
    return [parse_form(r.body) for r in sandbox.requests_to(r"/Messages\.json$") if r.method == "POST"]


def inbound(world, body: str, *, whatsapp: bool = False, number: str = CUSTOMER) -> str:
    """A customer's message as the webhook handler records it."""
    prefix = "whatsapp:" if whatsapp else ""
    form = {"MessageSid": "SM" + str(abs(hash((body, number, whatsapp, timezone.now()))))[:32].rjust(32, "0"),
            "From": prefix + number, "To": prefix + ALICE_SENDER, "Body": body, "AccountSid": world.alice_account.account_sid}  # fmt: skip
    return services.handle_inbound(world.alice, form)


# --- send_sms ---


def test_it_sends_an_sms_to_a_national_number_in_e164_from_the_tenants_sender(world):
    answer = world.call("send_sms", {"to": CUSTOMER_NATIONAL, "body": "Ihr Termin ist morgen um 10 Uhr."})
    assert answer.success, answer.error
    message = answer.data["message"]
    assert (message["customer_number"], message["status"], message["channel"]) == (CUSTOMER, "queued", "sms")
    assert answer.data["deferred"] is False
    [form] = sent_forms(world.sandbox)
    assert form["To"] == CUSTOMER and form["From"] == ALICE_SENDER and form["Body"].startswith("Ihr Termin")
    assert form["StatusCallback"] == "https://askpro.example.com/webhooks/twilio?tenant=alice-salon"
    row = Message.objects.get(pk=message["id"])
    assert row.company == world.alice and row.twilio_sid == message["twilio_sid"] and row.segments == 1
    assert world.sandbox.message(row.twilio_sid)["account_sid"] == world.alice_account.account_sid


def test_it_sends_through_a_messaging_service_when_the_sender_is_one(world):
    world.alice_account.sender = SERVICE_SID
    world.alice_account.save()
    assert world.call("send_sms", {"to": CUSTOMER, "body": "Hallo"}).success
    [form] = sent_forms(world.sandbox)
    assert form["MessagingServiceSid"] == SERVICE_SID and "From" not in form


def test_it_sends_one_message_for_a_repeated_idempotency_key(world):
    first = world.call("send_sms", {"to": CUSTOMER, "body": "Hallo"}, idempotency_key="reminder-17")
    again = world.call("send_sms", {"to": CUSTOMER, "body": "Hallo"}, idempotency_key="reminder-17")
    assert first.data["message"]["id"] == again.data["message"]["id"]
    assert len(sent_forms(world.sandbox)) == 1
    other = world.call("send_sms", {"to": CUSTOMER, "body": "Anders"}, idempotency_key="reminder-17")
    assert other.error["code"] == "conflict" and "idempotency_key" in other.error["message"]


def test_it_refuses_to_message_an_opted_out_customer_and_says_why(world):
    inbound(world, "STOP")
    answer = world.call("send_sms", {"to": CUSTOMER, "body": "Angebot"})
    assert answer.error["code"] == "conflict"
    assert answer.error["details"]["reason"] == "opted_out"
    assert "opted out" in answer.error["message"] and "sent STOP" in answer.error["message"]
    assert "START" in answer.error["message"]
    assert sent_forms(world.sandbox) == []
    assert not Message.objects.filter(direction="outbound").exists()


# --- quiet hours ---


def _quiet_now(account):
    """Quiet hours around the present moment in the tenant's zone (an hour back to two ahead)."""
    zone = services.tenant_zone(account.company)
    local = timezone.now().astimezone(zone)
    account.quiet_hours_start = (local - dt.timedelta(hours=1)).time().replace(second=0, microsecond=0)
    account.quiet_hours_end = (local + dt.timedelta(hours=2)).time().replace(second=0, microsecond=0)
    account.save()
    return local


def test_it_defers_a_message_in_quiet_hours_and_sends_it_when_they_end(world):
    _quiet_now(world.alice_account)
    answer = world.call("send_sms", {"to": CUSTOMER, "body": "Erinnerung"})
    assert answer.success and answer.data["deferred"] is True
    assert answer.data["message"]["status"] == "deferred" and "quiet hours" in answer.data["note"]
    assert sent_forms(world.sandbox) == []
    row = Message.objects.get(pk=answer.data["message"]["id"])
    assert (
        timezone.now() + dt.timedelta(minutes=110) < row.send_after < timezone.now() + dt.timedelta(hours=2)
    )
    assert services.send_due_deferred(now=timezone.now()) == {
        "sent": 0,
        "canceled": 0,
        "failed": 0,
        "retry": 0,
    }
    counts = services.send_due_deferred(now=row.send_after + dt.timedelta(seconds=1))
    assert counts["sent"] == 1
    row.refresh_from_db()
    assert row.status == "queued" and row.twilio_sid and row.sent_at is not None
    assert [f["Body"] for f in sent_forms(world.sandbox)] == ["Erinnerung"]


def test_it_sends_an_urgent_message_during_quiet_hours(world):
    _quiet_now(world.alice_account)
    answer = world.call("send_sms", {"to": CUSTOMER, "body": "Termin entfällt heute", "urgent": True})
    assert answer.data["deferred"] is False and answer.data["message"]["status"] == "queued"


def test_it_cancels_a_deferred_message_when_the_customer_opted_out_meanwhile(world):
    _quiet_now(world.alice_account)
    message_id = world.call("send_sms", {"to": CUSTOMER, "body": "Später"}).data["message"]["id"]
    assert world.call("set_opt_out", {"number": CUSTOMER, "opted_out": True}).success
    counts = services.send_due_deferred(now=timezone.now() + dt.timedelta(hours=3))
    assert counts["canceled"] == 1
    row = Message.objects.get(pk=message_id)
    assert row.status == "canceled" and "opted out" in row.error_message and row.twilio_sid is None


def test_it_computes_quiet_hours_that_span_midnight_in_the_tenants_zone(world):
    from mcp_servers.messaging.quiet_hours import quiet_until

    account = world.alice_account
    account.quiet_hours_start, account.quiet_hours_end = dt.time(21, 0), dt.time(8, 0)
    berlin = services.tenant_zone(world.alice)
    late = dt.datetime(2026, 12, 3, 22, 30, tzinfo=berlin)
    assert quiet_until(account, late) == dt.datetime(2026, 12, 4, 8, 0, tzinfo=berlin)
    early = dt.datetime(2026, 12, 4, 6, 0, tzinfo=berlin)
    assert quiet_until(account, early) == dt.datetime(2026, 12, 4, 8, 0, tzinfo=berlin)
    assert quiet_until(account, dt.datetime(2026, 12, 4, 12, 0, tzinfo=berlin)) is None
    # 21:30 UTC is 22:30 in Berlin: quiet there, whatever the server's clock zone.
    assert quiet_until(account, dt.datetime(2026, 12, 3, 21, 30, tzinfo=dt.UTC)) is not None


# --- WhatsApp ---


def test_it_sends_free_whatsapp_text_inside_the_24_hour_window(world):
    inbound(world, "Kann ich den Termin verschieben?", whatsapp=True)
    answer = world.call("send_whatsapp", {"to": CUSTOMER, "body": "Ja, gern."})
    assert answer.success, answer.error
    [form] = sent_forms(world.sandbox)
    assert form["To"] == f"whatsapp:{CUSTOMER}" and form["From"] == f"whatsapp:{ALICE_SENDER}"
    assert answer.data["message"]["channel"] == "whatsapp"


def test_it_refuses_free_whatsapp_text_outside_the_window_and_names_the_template_way(world):
    answer = world.call("send_whatsapp", {"to": CUSTOMER, "body": "Hallo"})
    assert answer.error["code"] == "conflict"
    assert answer.error["details"]["reason"] == "whatsapp_window_closed"
    assert "content_sid" in answer.error["message"]
    assert sent_forms(world.sandbox) == []


def test_it_sends_an_approved_template_outside_the_window(world):
    template = world.sandbox.add_template()
    answer = world.call(
        "send_whatsapp",
        {"to": CUSTOMER, "content_sid": template, "content_variables": {"1": "Freitag 10:00"}},
    )
    assert answer.success, answer.error
    [form] = sent_forms(world.sandbox)
    assert form["ContentSid"] == template and parse_qs(f"v={form['ContentVariables']}")["v"] == [
        '{"1": "Freitag 10:00"}'
    ]
    assert "Body" not in form


# --- status and price ---


def test_it_refreshes_the_status_and_stores_the_price_twilio_reports(world):
    message = world.call("send_sms", {"to": CUSTOMER, "body": "Hallo"}).data["message"]
    for _ in range(3):
        world.sandbox.advance(message["twilio_sid"])
    answer = world.call("get_message_status", {"message_id": message["id"]})
    assert answer.data["message"]["status"] == "delivered"
    assert Decimal(answer.data["message"]["price"]) == Decimal("0.079")  # Twilio's "-0.07900" as a cost
    assert answer.data["message"]["price_unit"] == "USD"


def test_it_never_moves_a_status_backwards(world):
    message = world.call("send_sms", {"to": CUSTOMER, "body": "Hallo"}).data["message"]
    sid = message["twilio_sid"]
    assert services.apply_status(world.alice.pk, sid, "delivered") is True
    assert services.apply_status(world.alice.pk, sid, "sent") is False
    assert services.apply_status(world.alice.pk, sid, "undelivered") is False
    assert Message.objects.get(pk=message["id"]).status == "delivered"
    assert services.apply_status(world.alice.pk, sid, "read") is True
    assert services.apply_status(world.bob.pk, sid, "failed") is False  # another tenant's sid


# --- reading ---


def test_it_lists_messages_with_filters_and_pages(world):
    for text in ("eins", "zwei", "drei"):
        world.call("send_sms", {"to": CUSTOMER, "body": text})
    inbound(world, "Danke")
    first = world.call("list_messages", {"direction": "outbound", "limit": 2}).data
    assert [m["body"] for m in first["messages"]] == ["drei", "zwei"] and first["next_cursor"]
    second = world.call(
        "list_messages", {"direction": "outbound", "limit": 2, "cursor": first["next_cursor"]}
    ).data
    assert [m["body"] for m in second["messages"]] == ["eins"] and second["next_cursor"] is None
    inbound_only = world.call(
        "list_messages", {"direction": "inbound", "customer_number": CUSTOMER_NATIONAL}
    ).data
    assert [m["body"] for m in inbound_only["messages"]] == ["Danke"]
    assert world.call("list_messages", {"channel": "whatsapp"}).data["messages"] == []


def test_it_shows_one_customers_thread_in_both_directions_oldest_first(world):
    inbound(world, "Hallo, ist morgen frei?", whatsapp=True)
    world.call("send_whatsapp", {"to": CUSTOMER, "body": "Ja, um 10 Uhr."})
    inbound(world, "Anderer Kunde", number="+4915198765432")
    answer = world.call("get_conversation", {"customer_number": CUSTOMER_NATIONAL}).data
    assert [(m["direction"], m["body"]) for m in answer["messages"]] == [
        ("inbound", "Hallo, ist morgen frei?"),
        ("outbound", "Ja, um 10 Uhr."),
    ]
    assert answer["whatsapp_window"]["open"] is True and answer["opted_out"] is False


# --- consent ---


def test_it_records_twilio_keywords_without_answering_them_itself(world):
    note = inbound(world, "Stop.")
    assert "STOP (opt_out)" in note and "confirmation" not in note
    assert OptOut.objects.get(company=world.alice, number=CUSTOMER).opted_out is True
    inbound(world, "start")
    assert OptOut.objects.get(company=world.alice, number=CUSTOMER).opted_out is False
    assert sent_forms(world.sandbox) == []


def test_it_answers_german_keywords_with_a_confirmation(world):
    note = inbound(world, "STOPP")
    assert "confirmation" in note
    [form] = sent_forms(world.sandbox)
    assert form["To"] == CUSTOMER and "keine Nachrichten mehr" in form["Body"]
    assert OptOut.objects.get(company=world.alice, number=CUSTOMER).keyword == "STOPP"
    inbound(world, "Hilfe")
    assert "Hilfe" in sent_forms(world.sandbox)[-1]["Body"]
    assert world.call("send_sms", {"to": CUSTOMER, "body": "x"}).error["details"]["reason"] == "opted_out"


def test_it_ignores_a_keyword_inside_a_sentence(world):
    inbound(world, "Bitte nicht stop sagen")
    assert not OptOut.objects.exists()


def test_it_records_an_inbound_message_once(world):
    form = {"MessageSid": "SM" + "1" * 32, "From": CUSTOMER, "To": ALICE_SENDER, "Body": "Hallo"}
    services.handle_inbound(world.alice, form)
    assert "already recorded" in services.handle_inbound(world.alice, form)
    assert Message.objects.filter(direction="inbound").count() == 1


def test_it_lists_and_sets_opt_outs(world):
    answer = world.call(
        "set_opt_out", {"number": CUSTOMER_NATIONAL, "opted_out": True, "note": "asked by phone"}
    )
    assert answer.data["opt_out"] | {"changed_at": None} == {
        "number": CUSTOMER, "opted_out": True, "keyword": None, "source": "operator", "note": "asked by phone",
        "changed_at": None,
    }  # fmt: skip
    assert [o["number"] for o in world.call("list_opt_outs").data["opt_outs"]] == [CUSTOMER]
    world.call("set_opt_out", {"number": CUSTOMER, "opted_out": False})
    assert world.call("list_opt_outs").data["opt_outs"] == []
    assert len(world.call("list_opt_outs", {"include_opted_in": True}).data["opt_outs"]) == 1
    assert world.call("list_opt_outs", key=world.bob_key).data["opt_outs"] == []


# --- costs and connection ---


def test_it_sums_the_prices_per_month_and_currency(world):
    for text in ("a", "b"):
        sid = world.call("send_sms", {"to": CUSTOMER, "body": text}).data["message"]["twilio_sid"]
        world.sandbox.advance(sid, "delivered")
        services.handle_status_callback(world.alice, world.sandbox.callback_params(sid, "delivered"))
    world.call("send_sms", {"to": CUSTOMER, "body": "noch ohne Preis"})
    old = Message.objects.create(company=world.alice, channel="sms", direction="outbound", customer_number=CUSTOMER,
                                 price=Decimal("5"), price_unit="USD")  # fmt: skip
    Message.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=62))
    answer = world.call("get_costs").data
    assert answer["costs"] == [{"currency": "USD", "total": "0.15800", "messages": 2}]
    assert (answer["priced_messages"], answer["unpriced_messages"]) == (2, 1)
    assert world.call("get_costs", key=world.bob_key).data["costs"] == []


def test_it_tests_the_connection_with_the_tenants_account(world):
    answer = world.call("test_connection")
    assert answer.success, answer.error
    assert answer.data | {"latency_ms": 0} == {
        "ok": True, "account_status": "active", "friendly_name": "Alice's Salon account",
        "sms_sender": ALICE_SENDER, "whatsapp_sender": ALICE_SENDER, "latency_ms": 0,
    }  # fmt: skip
    [request] = world.sandbox.requests_to(r"/Accounts/AC[0-9a-f]{32}\.json$")
    assert world.alice_account.auth_token not in str(answer.data)
    assert request.method == "GET"


def test_it_reports_health_from_the_tenants_accounts(world):
    from mcp_core.registry import get_registry

    server = get_registry().servers["messaging"]
    assert server.is_configured()
    assert server.health().status == "healthy"
    world.sandbox.accounts[world.bob_account.account_sid]["token"] = "rotated"
    health = server.health()
    assert health.status == "degraded" and "bob-practice" in health.detail
