"""get_messaging: delivery per channel from the messaging server's records, and the no-show rate of
reminded against not reminded appointments, counted by hand over March 2026 (and February), for
one tenant only."""

from __future__ import annotations

import datetime as dt

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext

from askpro.models import Customer
from mcp_servers.analytics import reports
from mcp_servers.analytics.schemas import MessagingParams

from .conftest import MARCH, appointment, local, op, refused


def message(company, number: str, at: dt.datetime, status: str, *, channel="sms", direction="outbound"):
    # The messaging server's model through the app registry, as the analytics server reads it.
    model = apps.get_model("mcp_messaging", "Message")
    row = model.objects.create(
        company=company, channel=channel, direction=direction, customer_number=number, status=status
    )
    model.objects.filter(pk=row.pk).update(created_at=at)
    return row


@pytest.fixture
def reminded(alice, bob):
    c1 = Customer.objects.create(company=alice, name="Carla", phone="+491701")
    c2 = Customer.objects.create(company=alice, name="Dora", phone="+491702")
    c3 = Customer.objects.create(company=alice, name="Emil", phone="+491703")
    c4 = Customer.objects.create(company=alice, name="Rita", phone="+491704")
    Customer.objects.create(company=bob, name="Bob's Rita", phone="+491704")

    def visit(customer, starts, status, created=None):
        return appointment(
            alice,
            customer=customer,
            starts=starts,
            minutes=30,
            created=created or local(3, 1, 9),
            status=status,
        )

    # March. Reminded: a message reached the number within 72 hours before the start, after booking.
    visit(c1, local(3, 10, 10), "completed")
    message(alice, "+491701", local(3, 9, 10), "delivered")
    visit(c2, local(3, 11, 10), "no_show")
    message(alice, "+491702", local(3, 10, 12), "read", channel="whatsapp")
    # Not reminded: the message failed; it came 5 days early; it came before the booking; only
    # another tenant wrote to that number; no message at all.
    visit(c3, local(3, 12, 10), "no_show")
    message(alice, "+491703", local(3, 12, 8), "failed")
    visit(c1, local(3, 20, 10), "completed")
    message(alice, "+491701", local(3, 15, 10), "delivered")
    visit(c2, local(3, 25, 10), "no_show", created=local(3, 24, 12))
    message(alice, "+491702", local(3, 24, 10), "delivered", channel="whatsapp")
    visit(c4, local(3, 26, 10), "completed")
    message(bob, "+491704", local(3, 25, 10), "delivered")
    visit(c3, local(3, 27, 10), "no_show")
    appointment(alice, starts=local(3, 28, 10), minutes=30, created=local(3, 1, 9), status="no_show")
    # Still on its way (pending), and a customer's answer (inbound: not ours to deliver).
    message(alice, "+491703", local(3, 28, 9), "queued", channel="whatsapp")
    message(alice, "+491701", local(3, 9, 11), "received", direction="inbound")
    # February: reminded by a message Twilio handed on (sent), no outcome yet.
    visit(c1, local(2, 10, 10), "completed", created=local(2, 1, 9))
    message(alice, "+491701", local(2, 9, 10), "sent")
    return {"alice": alice, "bob": bob}


def current(figures: dict, *names: str) -> tuple:
    return tuple(figures[name]["current"] for name in names)


def test_it_gives_delivery_per_channel_with_the_previous_period(reminded, reader):
    data = op(reader, "get_messaging", MARCH)
    channels = {row["channel"]: row for row in data["channels"]}
    assert [row["channel"] for row in data["channels"]] == ["sms", "whatsapp", "all"]
    names = ("messages", "delivered", "read", "failed", "pending", "delivery_rate")
    assert current(channels["sms"], *names) == (3, 2, 0, 1, 0, 0.6667)
    assert current(channels["whatsapp"], *names) == (3, 2, 1, 0, 1, 1.0)
    assert current(channels["all"], *names) == (6, 4, 1, 1, 1, 0.8)
    # February: one SMS handed on, no final word yet, so no rate.
    previous = channels["sms"]
    assert (previous["messages"]["previous"], previous["pending"]["previous"]) == (1, 1)
    assert previous["delivery_rate"]["previous"] is None
    assert channels["whatsapp"]["messages"]["previous"] == 0


def test_it_sets_the_no_show_rate_of_reminded_against_not_reminded_appointments(reminded, reader):
    data = op(reader, "get_messaging", MARCH)
    names = ("appointments", "completed", "no_shows", "no_show_rate")
    assert data["reminder_hours"] == 72
    assert current(data["reminded"], *names) == (2, 1, 1, 0.5)
    assert current(data["not_reminded"], *names) == (5, 2, 3, 0.6)
    assert data["reminded"]["no_show_rate"]["previous"] == 0.0
    assert data["reminded"]["appointments"]["previous"] == 1
    assert data["not_reminded"]["no_show_rate"]["previous"] is None
    # A wider window makes the message five days ahead a reminder.
    wider = op(reader, "get_messaging", {**MARCH, "reminder_hours": 168})
    assert current(wider["reminded"], *names) == (3, 2, 1, 0.3333)
    assert current(wider["not_reminded"], *names) == (4, 1, 3, 0.75)


def test_it_never_counts_another_tenants_messages(reminded, bob_reader):
    data = op(bob_reader, "get_messaging", MARCH)
    channels = {row["channel"]: row for row in data["channels"]}
    assert current(channels["all"], "messages", "delivered") == (1, 1)
    assert current(channels["whatsapp"], "messages") == (0,)
    assert current(data["reminded"], "appointments") == (0,)
    assert current(data["not_reminded"], "appointments") == (0,)


def test_it_reads_the_figures_with_one_statement(reminded):
    with CaptureQueriesContext(connection) as queries:
        reports.messaging(reminded["alice"], MessagingParams(date_from=dt.date(2026, 3, 1)))
    assert len(queries.captured_queries) == 1


def test_it_refuses_a_reminder_window_out_of_range_naming_it(reminded, reader):
    for hours in (0, 337):
        error = refused(reader, "get_messaging", {**MARCH, "reminder_hours": hours})
        assert error["code"] == "validation_error"
        assert "reminder_hours" in str(error)


def test_it_says_so_without_the_messaging_server(alice, reader, monkeypatch):
    def missing(app_label, model_name=None):
        raise LookupError(app_label)

    monkeypatch.setattr(apps, "get_model", missing)
    error = refused(reader, "get_messaging", MARCH)
    assert error["code"] == "not_configured" and "messaging" in error["message"]
