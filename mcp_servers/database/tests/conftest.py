"""Shared setup of the database tests."""

from __future__ import annotations

from datetime import timedelta as td
from decimal import Decimal

import pytest
from django.utils import timezone

from askpro.models import Appointment, Branch, Call, Customer, PhoneNumber, Staff
from mcp_core.api_keys import api_key_authenticate
from mcp_core.pipeline import call_operation


@pytest.fixture
def world(alice, bob):
    """Alice gets a second branch, more calls over the last two weeks and more appointments."""
    now = timezone.now()
    main = alice.branches.get(slug="main")
    second = Branch.objects.create(company=alice, name="Second", slug="second", calcom_event_type_id=7)
    PhoneNumber.objects.create(company=alice, branch=second, number="+4930111112", type="direct")
    PhoneNumber.objects.create(company=alice, branch=second, number="+4930111113", is_active=False)
    Staff.objects.create(company=alice, branch=main, name="Stylist Sam")
    walkin = Customer.objects.create(company=alice, name="Walk-in Wanda", phone="+491700000042")
    calls = {
        "lost": Call.objects.create(
            company=alice,
            branch=second,
            customer=walkin,
            from_number=walkin.phone,
            started_at=now - td(days=1, hours=1),
            duration_sec=60,
            cost=Decimal("0.25"),
            call_successful=False,
            summary="Wanda could not find a slot",
        ),
        "broken": Call.objects.create(
            company=alice,
            branch=main,
            started_at=now - td(days=3),
            duration_sec=30,
            cost=Decimal("0.10"),
            status=Call.Status.ERROR,
        ),
        "old": Call.objects.create(
            company=alice,
            branch=main,
            started_at=now - td(days=10),
            duration_sec=300,
            cost=Decimal("1.00"),
            call_successful=True,
        ),
    }
    # An appointment with an error recorded but not (yet) failed, and an old failure.
    Appointment.objects.create(
        company=alice,
        branch=second,
        customer=walkin,
        starts_at=now + td(days=2),
        ends_at=now + td(days=2, minutes=30),
        status=Appointment.Status.CONFIRMED,
        error_message="calendar sync failed",
    )
    old = Appointment.objects.create(
        company=alice,
        branch=main,
        customer=walkin,
        starts_at=now - td(days=3),
        ends_at=now - td(days=3) + td(minutes=30),
        status=Appointment.Status.FAILED,
        error_message="no staff free",
    )
    Appointment.objects.filter(pk=old.pk).update(updated_at=now - td(hours=48))
    return {"alice": alice, "bob": bob, "main": main, "second": second, "calls": calls}


@pytest.fixture
def reader(alice, key_factory):
    return api_key_authenticate(key_factory(tenant=alice, scopes=["database:read"]))


def op(principal, name, params=None, **kwargs):
    response = call_operation("database", name, params or {}, principal=principal, **kwargs)
    assert response.success, response.error
    return response.data
