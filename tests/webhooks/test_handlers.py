"""Handlers: Retell calls (with a booking made through the Cal.com server and its sandbox),
Cal.com bookings kept in sync, Stripe invoices and billing status."""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

import pytest

from askpro.models import Appointment, Call, Company, Invoice
from mcp_core.api_keys import api_key_authenticate
from mcp_core.pipeline import call_operation
from mcp_servers.calcom.sandbox import DEMO_API_KEY, CalcomSandbox
from mcp_servers.webhooks.models import WebhookEvent

from .conftest import calcom_body, post, retell_body, retell_call, signed, stripe_body


@pytest.fixture(scope="module")
def calcom_sandbox():
    server = CalcomSandbox().start()
    yield server
    server.stop()


@pytest.fixture
def calcom(calcom_sandbox, settings):
    calcom_sandbox.reset()
    calcom_sandbox.add_event_type(
        DEMO_API_KEY, title="Consultation", slug="consult", length=30, event_type_id=42
    )
    settings.CALCOM_BASE_URL = calcom_sandbox.url
    settings.CALCOM_API_KEY = DEMO_API_KEY
    return calcom_sandbox


def _next_monday_10_berlin() -> dt.datetime:
    berlin = ZoneInfo("Europe/Berlin")
    day = dt.datetime.now(berlin).date() + dt.timedelta(days=3)
    while day.weekday() != 0:
        day += dt.timedelta(days=1)
    return dt.datetime(day.year, day.month, day.day, 10, 0, tzinfo=berlin)


def _deliver(client, capture, provider, body, secret=None):
    with capture(execute=True):
        response = post(client, provider, body, signed(provider, body, secret))
    assert response.status_code in (200, 202), response.content
    return response


def _analyzed_call(start: dt.datetime, **custom):
    return retell_call(
        call_status="ended",
        end_timestamp=int(time.time() * 1000),
        duration_ms=95_000,
        transcript="Agent: Hello ...",
        disconnection_reason="user_hangup",
        call_cost={"combined_cost": 42.5},
        call_analysis={
            "call_summary": "Caller booked a consultation",
            "user_sentiment": "Positive",
            "call_successful": True,
            "custom_analysis_data": {
                "appointment_booked": True,
                "appointment_start": start.isoformat(),
                "appointment_service": "Consultation",
                "customer_name": "Erika Muster",
                "customer_email": "erika@example.com",
                **custom,
            },
        },
    )


@pytest.mark.django_db
def test_it_follows_a_call_and_books_its_appointment_through_the_calcom_server(
    client, alice, calcom, platform_key, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    start = _next_monday_10_berlin()
    analyzed = _analyzed_call(start)
    _deliver(client, capture, "retell", retell_body({"event": "call_started", "call": retell_call()}))
    ended = {k: v for k, v in analyzed.items() if k != "call_analysis"}
    _deliver(client, capture, "retell", retell_body({"event": "call_ended", "call": ended}))
    _deliver(client, capture, "retell", retell_body({"event": "call_analyzed", "call": analyzed}))

    assert list(WebhookEvent.objects.values_list("status", flat=True)) == ["processed"] * 3
    call = Call.objects.get(retell_call_id="call_abc")
    assert (call.status, call.duration_sec, str(call.cost)) == ("ended", 95, "0.4250")
    assert call.summary == "Caller booked a consultation" and call.sentiment == "Positive"
    assert call.customer.name == "Erika Muster" and call.customer.email == "erika@example.com"
    appointment = Appointment.objects.get(call=call)
    assert appointment.company == alice and appointment.starts_at == start
    assert appointment.customer == call.customer and appointment.calcom_booking_uid
    assert len(calcom.bookings) == 1

    # Replaying the analysed call (forced) books nothing twice: the handler and the Cal.com
    # server's idempotency key (derived from the call id) both hold.
    event = WebhookEvent.objects.get(type="call_analyzed")
    principal = api_key_authenticate(platform_key)
    with capture(execute=True):
        replay = call_operation(
            "webhooks", "replay_event", {"id": event.pk, "force": True}, principal=principal
        )
    assert replay.data["outcome"] == "queued"
    event.refresh_from_db()
    assert event.status == "processed" and "exists" in event.result
    assert Appointment.objects.filter(call=call).count() == 1 and len(calcom.bookings) == 1


@pytest.mark.django_db
def test_it_retries_a_booking_cal_com_refused_and_records_the_failure(
    client, alice, calcom, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    calcom.inject_fault(status=503, path=r"^/v2/bookings$")
    body = retell_body({"event": "call_analyzed", "call": _analyzed_call(_next_monday_10_berlin())})
    _deliver(client, django_capture_on_commit_callbacks, "retell", body)
    event = WebhookEvent.objects.get()
    assert event.status == "failed" and event.attempts == 2
    assert event.last_error.startswith("HandlerError: calcom.create_booking:")
    assert Call.objects.get(retell_call_id="call_abc").status == "ended", "the call itself is kept"
    assert not Appointment.objects.filter(call__retell_call_id="call_abc").exists()


@pytest.mark.django_db
def test_it_never_moves_a_call_backwards_when_events_arrive_out_of_order(
    client, alice, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    ended = retell_call(call_status="ended", duration_ms=30_000)
    _deliver(client, capture, "retell", retell_body({"event": "call_ended", "call": ended}))
    _deliver(client, capture, "retell", retell_body({"event": "call_started", "call": retell_call()}))
    call = Call.objects.get(retell_call_id="call_abc")
    assert call.status == "ended" and call.duration_sec == 30


@pytest.mark.django_db
def test_it_fails_a_call_for_a_number_no_tenant_owns(
    client, alice, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    body = retell_body({"event": "call_started", "call": retell_call(to="+4999000000")})
    _deliver(client, django_capture_on_commit_callbacks, "retell", body)
    event = WebhookEvent.objects.get()
    assert event.status == "failed" and "+4999000000" in event.last_error
    assert not Call.objects.filter(retell_call_id="call_abc").exists()


def _booking(uid, start="2026-12-01T09:00:00Z", end="2026-12-01T09:30:00Z", status="ACCEPTED", **extra):
    return {
        "uid": uid,
        "bookingId": 5001,
        "eventTypeId": 42,
        "startTime": start,
        "endTime": end,
        "status": status,
        "attendees": [{"name": "Max", "email": "max@example.com", "timeZone": "Europe/Berlin"}],
        **extra,
    }


@pytest.mark.django_db
def test_it_keeps_the_appointment_in_sync_with_calcom_bookings(
    client, alice, bob, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    bob.branches.update(calcom_event_type_id=43)
    _deliver(
        client, capture, "calcom", calcom_body("BOOKING_CREATED", _booking("bk_1"), "2026-11-26T10:00:00Z")
    )
    appointment = Appointment.objects.get(calcom_booking_uid="bk_1")
    assert (appointment.company, appointment.status) == (alice, "confirmed")
    assert appointment.branch == alice.branches.get() and appointment.customer.email == "max@example.com"

    moved = _booking(
        "bk_2", "2026-12-02T11:00:00Z", "2026-12-02T11:30:00Z", rescheduleUid="bk_1", rescheduleReason="later"
    )
    _deliver(client, capture, "calcom", calcom_body("BOOKING_RESCHEDULED", moved, "2026-11-26T10:05:00Z"))
    appointment.refresh_from_db()
    assert appointment.calcom_booking_uid == "bk_2"
    assert appointment.starts_at == dt.datetime(2026, 12, 2, 11, 0, tzinfo=dt.UTC)
    assert appointment.metadata["calcom_previous_uids"] == ["bk_1"]

    cancelled = _booking("bk_2", status="CANCELLED", cancellationReason="sick")
    _deliver(client, capture, "calcom", calcom_body("BOOKING_CANCELLED", cancelled, "2026-11-26T10:10:00Z"))
    # A late, older BOOKING_CREATED for the same booking must not revive it.
    _deliver(
        client, capture, "calcom", calcom_body("BOOKING_CREATED", _booking("bk_2"), "2026-11-26T10:06:00Z")
    )
    appointment.refresh_from_db()
    assert appointment.status == "cancelled" and appointment.metadata["cancellation_reason"] == "sick"
    assert Appointment.objects.filter(company=alice, calcom_booking_uid__in=["bk_1", "bk_2"]).count() == 1
    assert WebhookEvent.objects.filter(status="processed").count() == 4

    _deliver(client, capture, "calcom", calcom_body("PING", {"uid": ""}, "2026-11-26T10:11:00Z"))
    assert WebhookEvent.objects.get(type="PING").result == "ignored PING"


@pytest.mark.django_db
def test_it_syncs_stripe_invoices_and_the_companys_billing_status(
    client, alice, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    Company.objects.filter(pk=alice.pk).update(stripe_customer_id="cus_alice", billing_status="active")
    invoice = {
        "id": "in_1",
        "object": "invoice",
        "customer": "cus_alice",
        "status": "open",
        "number": "A-0001",
        "currency": "eur",
        "subtotal": 10000,
        "total": 11900,
        "due_date": 1767225600,
        "status_transitions": {"paid_at": None},
    }
    _deliver(client, capture, "stripe", stripe_body("invoice.finalized", invoice, created=100))
    _deliver(client, capture, "stripe", stripe_body("invoice.payment_failed", invoice, created=200))
    row = Invoice.objects.get(stripe_invoice_id="in_1")
    assert (row.company, row.status, str(row.total), str(row.tax), row.number) == (
        alice,
        "open",
        "119.00",
        "19.00",
        "A-0001",
    )
    alice.refresh_from_db()
    assert alice.billing_status == "past_due"

    paid = {**invoice, "status": "paid", "status_transitions": {"paid_at": 1767000000}}
    _deliver(client, capture, "stripe", stripe_body("invoice.paid", paid, created=300))
    # An older event delivered late changes nothing.
    _deliver(client, capture, "stripe", stripe_body("invoice.finalized", invoice, created=150))
    row.refresh_from_db()
    alice.refresh_from_db()
    assert row.status == "paid" and row.paid_at is not None
    assert alice.billing_status == "active"

    sub = {"id": "sub_9", "object": "subscription", "customer": "cus_alice", "status": "past_due"}
    _deliver(client, capture, "stripe", stripe_body("customer.subscription.updated", sub, created=400))
    _deliver(client, capture, "stripe", stripe_body("customer.subscription.deleted", sub, created=500))
    _deliver(client, capture, "stripe", stripe_body("customer.subscription.updated", sub, created=450))
    alice.refresh_from_db()
    assert (alice.billing_status, alice.stripe_subscription_id) == ("canceled", "sub_9")
    assert WebhookEvent.objects.filter(status="processed").count() == 7


@pytest.mark.django_db
def test_it_records_a_payment_intent_on_the_invoice_it_pays(
    client, alice, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    Invoice.objects.create(company=alice, stripe_invoice_id="in_pi", status="open")
    pi = {
        "id": "pi_1",
        "object": "payment_intent",
        "status": "succeeded",
        "invoice": "in_pi",
        "customer": "cus_z",
    }
    _deliver(client, capture, "stripe", stripe_body("payment_intent.succeeded", pi, created=10))
    row = Invoice.objects.get(stripe_invoice_id="in_pi")
    assert row.status == "paid" and row.metadata["payment_intent"] == "pi_1"
    assert WebhookEvent.objects.get().tenant == alice
