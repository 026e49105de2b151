"""A month of Alice's salon (March 2026, Europe/Berlin) and the month before it, built so that
every figure the analytics operations give can be counted by hand (see each test).

Period under test: 2026-03-01 .. 2026-03-31 (31 days); previous period: 2026-01-29 .. 2026-02-28.
make_tenant's own records lie in the present (December 2026 or later), outside both.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from askpro.models import Appointment, Branch, Call, Customer, Invoice, Service, Staff, WorkingHours
from mcp_core.api_keys import api_key_authenticate
from mcp_core.pipeline import call_operation

BERLIN = ZoneInfo("Europe/Berlin")
MARCH = {"date_from": "2026-03-01", "date_to": "2026-03-31"}


def local(month: int, day: int, hour: int, minute: int = 0, year: int = 2026) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def appointment(company, *, starts, minutes, created, **fields) -> Appointment:
    row = Appointment.objects.create(
        company=company, starts_at=starts, ends_at=starts + dt.timedelta(minutes=minutes), **fields
    )
    Appointment.objects.filter(pk=row.pk).update(created_at=created)
    return row


@pytest.fixture
def salon(alice, bob):
    main = alice.branches.get(slug="main")
    north = Branch.objects.create(company=alice, name="North", slug="north")
    consultation = alice.services.get(name="Consultation")
    cut = Service.objects.create(company=alice, name="Cut", duration_minutes=45, price=Decimal("80"))
    anna = Staff.objects.create(company=alice, branch=main, name="Anna")
    ben = Staff.objects.create(company=alice, branch=main, name="Ben")
    cleo = Staff.objects.create(company=alice, branch=north, name="Cleo")  # no working hours
    for weekday in range(1, 6):  # Anna: Monday to Friday 09:00-17:00 (480 minutes)
        WorkingHours.objects.create(company=alice, staff=anna, weekday=weekday, starts="09:00", ends="17:00")
    WorkingHours.objects.create(company=alice, staff=ben, weekday=6, starts="10:00", ends="14:00")  # Sat 240
    c1 = Customer.objects.create(company=alice, name="Regular Carla", phone="+491701")
    c2 = Customer.objects.create(company=alice, name="Dora", phone="+491702")
    c3 = Customer.objects.create(company=alice, name="Emil", phone="+491703")
    c4 = Customer.objects.create(company=alice, name="Lapsed Rita", phone="+491704")

    def call(
        when, seconds, *, reason="user_hangup", status=Call.Status.ENDED, customer=None, successful=None
    ):
        return Call.objects.create(
            company=alice,
            branch=main,
            customer=customer,
            started_at=when,
            duration_sec=seconds,
            disconnection_reason=reason,
            status=status,
            call_successful=successful,
        )

    calls = {
        # March
        1: call(local(3, 2, 10, 15), 120, customer=c1, successful=True),  # Mon, booked, attended
        2: call(local(3, 2, 10, 40), 60, reason="call_transfer", customer=c2),  # Mon, transferred
        3: call(
            local(3, 3, 11), 0, reason="error_llm_websocket_open", status=Call.Status.ERROR
        ),  # Tue, missed
        4: call(
            local(3, 9, 10, 5), 300, reason="agent_hangup"
        ),  # Mon, unknown caller, booked (cancelled later)
        5: call(local(3, 11, 15), 90, customer=c3, successful=False),  # Wed, its appointment failed
        # the previous period
        6: call(local(2, 10, 9), 100, customer=c1),  # booked, attended
        7: call(local(2, 12, 9, 30), 50, reason="dial_no_answer"),  # missed
        # outside both
        8: call(local(1, 1, 9), 30),
    }
    a = {
        "A1": appointment(
            alice, branch=main, staff=anna, service=consultation, customer=c1, call=calls[1],
            starts=local(3, 5, 10), minutes=30, created=local(3, 2, 10, 17), status="completed",
        ),
        "A2": appointment(
            alice, branch=main, staff=anna, service=consultation, customer=c2, call=calls[4],
            starts=local(3, 13, 14), minutes=60, created=local(3, 9, 10, 10), status="cancelled",
        ),
        "A3": appointment(
            alice, branch=main, staff=ben, service=consultation, customer=c3, call=calls[5],
            starts=local(3, 12, 9), minutes=30, created=local(3, 11, 15, 2), status="failed",
        ),
        "A4": appointment(
            alice, branch=main, staff=ben, service=consultation, customer=c1, call=calls[6],
            starts=local(2, 14, 10), minutes=60, created=local(2, 10, 9, 2), status="completed",
        ),
        "A5": appointment(
            alice, branch=main, staff=ben, customer=c2,
            starts=local(3, 14, 10), minutes=120, created=local(3, 1, 12), status="no_show",
        ),
        "A6": appointment(
            alice, branch=north, staff=cleo, service=cut, customer=c3,
            starts=local(3, 16, 9), minutes=45, created=local(3, 15, 9), status="scheduled",
        ),
    }  # fmt: skip
    # Earlier visits: Carla since December 2025 (a regular still coming), Rita Oct-Dec 2025 (lapsed).
    history = [(c1, local(12, 1, 10, year=2025)), (c1, local(1, 5, 10))]
    history += [(c4, local(m, 1, 10, year=2025)) for m in (10, 11, 12)]
    for customer, starts in history:
        appointment(
            alice, branch=main, customer=customer, starts=starts, minutes=30,
            created=starts - dt.timedelta(days=1), status="completed",
        )  # fmt: skip

    def invoice(total, paid_at, *, appointment=None, stripe_id=None, status="paid", currency="EUR"):
        return Invoice.objects.create(
            company=alice,
            appointment=appointment,
            stripe_invoice_id=stripe_id,
            status=status,
            currency=currency,
            total=Decimal(total),
            paid_at=paid_at,
        )

    invoice("50.00", local(3, 5, 11), appointment=a["A1"], stripe_id="in_a1")
    invoice("80.00", local(3, 16, 10), appointment=a["A6"])
    invoice("20.00", local(3, 20, 12))  # not linked to a visit
    invoice("40.00", local(2, 14, 11), appointment=a["A4"], stripe_id="in_a4")
    invoice("999.00", local(3, 10, 12), status="open")  # not paid
    invoice("500.00", local(3, 10, 12), currency="USD")  # another currency
    return {
        "alice": alice,
        "bob": bob,
        "main": main,
        "north": north,
        "staff": {"anna": anna, "ben": ben, "cleo": cleo},
        "services": {"consultation": consultation, "cut": cut},
        "customers": {"c1": c1, "c2": c2, "c3": c3, "c4": c4},
        "calls": calls,
        "appointments": a,
    }


@pytest.fixture
def reader(alice, key_factory):
    return api_key_authenticate(key_factory(tenant=alice, scopes=["analytics:read"]))


@pytest.fixture
def bob_reader(bob, key_factory):
    return api_key_authenticate(key_factory(tenant=bob, scopes=["analytics:read"]))


def op(principal, name, params=None, **kwargs):
    response = call_operation("analytics", name, params or {}, principal=principal, **kwargs)
    assert response.success, response.error
    return response.data


def refused(principal, name, params=None, **kwargs):
    response = call_operation("analytics", name, params or {}, principal=principal, **kwargs)
    assert not response.success, response.data
    return response.error
