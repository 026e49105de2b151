"""The database server's read operations give the right figures for data built here,
through the pipeline and through the HTTP API."""

from __future__ import annotations

import datetime as dt
from datetime import timedelta as td
from decimal import Decimal

import pytest
from django.utils import timezone

from askpro.models import Appointment, Branch, Call, Customer, PhoneNumber, Staff
from mcp_core.api_keys import api_key_authenticate
from mcp_core.pipeline import call_operation
from mcp_servers.database.sql_guard import secret_columns


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


def test_it_counts_calls_of_the_last_days(world, reader):
    stats = op(reader, "get_call_stats", {"days": 7})
    # make_tenant's call (2 h ago, 120 s, 0.50, successful, booked) + lost + broken; "old" is 10 days back.
    assert stats["total"] == 3
    assert stats["ended"] == 2
    assert stats["failed"] == 2  # one unsuccessful, one with status error
    assert stats["successful"] == 1
    assert stats["with_appointment"] == 1
    assert stats["avg_duration_sec"] == pytest.approx(70.0)
    assert stats["total_cost"] == pytest.approx(0.85)
    calls = Call.objects.filter(company=world["alice"], started_at__gte=timezone.now() - td(days=7))
    days = sorted({c.started_at.astimezone(dt.UTC).date().isoformat() for c in calls})
    assert [d["date"] for d in stats["daily"]] == days
    assert sum(d["total"] for d in stats["daily"]) == 3
    assert op(reader, "get_call_stats", {"days": 30})["total"] == 4
    by_branch = op(reader, "get_call_stats", {"days": 30, "branch_id": world["second"].pk})
    assert (by_branch["total"], by_branch["failed"], by_branch["total_cost"]) == (1, 1, 0.25)


def test_it_answers_zeros_not_errors_for_a_quiet_period(world, reader):
    Call.objects.filter(company=world["alice"]).update(started_at=timezone.now() - td(days=60))
    stats = op(reader, "get_call_stats", {"days": 1})
    assert stats["total"] == 0 and stats["daily"] == [] and stats["avg_duration_sec"] is None


def test_it_lists_failed_appointments_newest_first(world, reader):
    data = op(reader, "get_failed_appointments", {"hours": 24})
    assert data["count"] == 2
    assert [a["error_message"] for a in data["appointments"]] == ["calendar sync failed", "slot taken"]
    first = data["appointments"][0]
    assert first["customer_name"] == "Walk-in Wanda" and first["branch"] == "Second"
    assert first["status"] == "confirmed"
    assert op(reader, "get_failed_appointments", {"hours": 72})["count"] == 3
    assert op(reader, "get_failed_appointments", {"hours": 72, "limit": 1})["count"] == 1


def test_it_counts_the_tenants_records(world, reader):
    stats = op(reader, "get_tenant_stats")
    assert stats == {
        "tenant": "alice-salon",
        "branches": 2,
        "staff": 1,
        "services": 1,
        "customers": 2,
        "appointments": 4,
        "calls": 4,
        "phone_numbers": 3,
        "calls_last_30_days": 4,
        "appointments_upcoming": 2,
    }


def test_it_maps_phone_numbers_to_branches(world, reader):
    data = op(reader, "get_phone_branch_mapping")
    assert data["total"] == 2
    by_number = {m["phone_number"]: m for m in data["mappings"]}
    assert by_number["+4930111111"]["branch"]["name"] == "Main"
    assert by_number["+4930111111"]["branch"]["calcom_event_type_id"] == 42
    assert by_number["+4930111112"]["branch"]["id"] == world["second"].pk
    assert by_number["+4930111112"]["type"] == "direct"
    assert op(reader, "get_phone_branch_mapping", {"include_inactive": True})["total"] == 3
    only = op(reader, "get_phone_branch_mapping", {"phone_number": " +4930111112 "})
    assert [m["phone_number"] for m in only["mappings"]] == ["+4930111112"]
    second = op(
        reader, "get_phone_branch_mapping", {"branch_id": world["second"].pk, "include_inactive": True}
    )
    assert sorted(m["phone_number"] for m in second["mappings"]) == ["+4930111112", "+4930111113"]
    # Bob's number is not Alice's.
    assert op(reader, "get_phone_branch_mapping", {"phone_number": "+4940222222"})["total"] == 0


def test_it_refuses_another_tenants_branch(world, reader):
    bob_branch = world["bob"].branches.first()
    for name in ("get_phone_branch_mapping", "get_call_stats"):
        response = call_operation("database", name, {"branch_id": bob_branch.pk}, principal=reader)
        assert response.error["code"] == "not_found", response.error
        assert response.error["details"]["field"] == "branch_id"


def test_it_searches_customers_appointments_and_calls(world, reader):
    hits = op(reader, "search", {"query": "wanda"})["hits"]
    tables = sorted(h["table"] for h in hits)
    # the customer, her two appointments, and her call (by customer name and by summary)
    assert tables == ["appointments", "appointments", "calls", "customers"]
    assert {h["label"] for h in hits if h["table"] == "customers"} == {"Walk-in Wanda"}
    by_phone = op(reader, "search", {"query": "1700000042", "tables": ["customers"]})["hits"]
    assert [h["label"] for h in by_phone] == ["Walk-in Wanda"]
    assert (
        op(reader, "search", {"query": "wanda", "limit": 1, "tables": ["appointments"]})["hits"].__len__()
        == 1
    )
    # Bob's customer is invisible to Alice.
    assert op(reader, "search", {"query": "bob-practice"})["hits"] == []


def test_it_describes_the_schema_without_secret_columns(world, reader):
    data = op(reader, "get_schema")
    tables = {t["name"]: t for t in data["tables"]}
    assert "mcp_core_apikey" not in tables and "auth_user" not in tables
    company_columns = {c["name"] for c in tables["askpro_company"]["columns"]}
    assert {"name", "slug", "is_active"} <= company_columns
    assert secret_columns()["askpro_company"] >= {"calcom_api_key", "stripe_secret_key"}
    assert not company_columns & secret_columns()["askpro_company"]
    assert tables["askpro_call"]["tenant_rows"] == 4
    assert tables["askpro_phonenumber"]["tenant_rows"] == 3
    assert "call_company_started" in tables["askpro_call"]["indexes"]
    only = op(reader, "get_schema", {"tables": ["askpro_branch"]})
    assert [t["name"] for t in only["tables"]] == ["askpro_branch"]
    response = call_operation("database", "get_schema", {"tables": ["auth_user"]}, principal=reader)
    assert response.error["code"] == "validation_error" and response.error["details"]["field"] == "tables"


def test_it_gives_the_same_figures_over_http(world, client, key_factory, platform_key):
    key = key_factory(tenant=world["alice"], scopes=["database:read"])
    response = client.post(
        "/api/v1/mcp/call",
        data={"service": "database", "operation": "get_call_stats", "params": {"days": 7}},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["success"] is True and body["error"] is None
    assert (body["data"]["total"], body["data"]["failed"]) == (3, 2)
    assert body["metadata"]["tenant_id"] == world["alice"].pk
    assert body["metadata"]["service"] == "database" and body["metadata"]["request_id"]
    # A platform key names the tenant and sees the same.
    response = client.post(
        "/api/v1/mcp/call",
        data={"service": "database", "operation": "get_tenant_stats", "tenant": "alice-salon"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {platform_key}",
    )
    assert response.json()["data"]["calls"] == 4


def test_it_reports_healthy_with_a_reachable_database(db):
    from mcp_core.registry import get_registry

    result = get_registry().get_server("database").health()
    assert result.status == "healthy", result.detail
