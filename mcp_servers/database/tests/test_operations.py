"""The database server's read operations give the right figures for data built here,
through the pipeline and through the HTTP API."""

from __future__ import annotations

import datetime as dt
from datetime import timedelta as td

import pytest
from django.utils import timezone

from askpro.models import Call
from mcp_core.pipeline import call_operation
from mcp_servers.database.sql_guard import secret_columns

from .conftest import op


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
