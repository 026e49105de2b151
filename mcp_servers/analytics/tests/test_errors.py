"""The analytics operations refuse bad periods naming the field, and a tenant never sees another
tenant's figures: another tenant's branch is answered like an unknown one."""

from __future__ import annotations

import pytest

from mcp_servers.analytics.server import AnalyticsServer

from .conftest import MARCH, op, refused

OPERATIONS = sorted(AnalyticsServer.operations)
# get_messaging reads the whole tenant: messages carry no branch (test_messaging.py).
BRANCHED = [name for name in OPERATIONS if name != "get_messaging"]
NEEDED = {"compare_periods": {"metric": "calls"}, "export_csv": {"report": "daily"}}


def params(name: str, **extra):
    return {**NEEDED.get(name, {}), **extra}


@pytest.mark.parametrize("name", OPERATIONS)
def test_it_refuses_a_reversed_period_naming_date_from(alice, reader, name):
    error = refused(reader, name, params(name, date_from="2026-03-31", date_to="2026-03-01"))
    assert error["code"] == "validation_error"
    assert error["details"]["field"] == "date_from" and "after" in error["message"]


@pytest.mark.parametrize("name", OPERATIONS)
def test_it_refuses_a_period_longer_than_the_maximum(alice, reader, name, settings):
    error = refused(reader, name, params(name, date_from="2024-01-01", date_to="2026-01-01"))
    assert error["code"] == "validation_error" and error["details"]["field"] == "date_to"
    assert "at most 366 days" in error["message"]
    settings.ANALYTICS_MAX_PERIOD_DAYS = 800
    op(reader, name, params(name, date_from="2024-01-01", date_to="2026-01-01"))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("date_from", "0001-01-01"),
        ("date_to", "9999-12-31"),
        ("date_from", "2026-02-30"),
        ("date_to", "yesterday"),
    ],
)
def test_it_refuses_impossible_and_extreme_dates_naming_the_field(alice, reader, field, value):
    error = refused(reader, "get_overview", {field: value})
    assert error["code"] == "validation_error" and error["details"]["field"] == field


def test_it_refuses_a_period_whose_previous_period_leaves_the_calendar(alice, reader):
    error = refused(reader, "get_overview", {"date_from": "1900-01-01", "date_to": "1900-01-31"})
    assert error["code"] == "validation_error" and error["details"]["field"] == "date_from"


def test_it_needs_both_ends_of_the_compared_period(alice, reader):
    error = refused(reader, "compare_periods", {**MARCH, "metric": "calls", "compare_from": "2026-01-01"})
    assert error["code"] == "validation_error" and error["details"]["field"] == "compare_to"
    error = refused(
        reader,
        "compare_periods",
        {**MARCH, "metric": "calls", "compare_from": "2026-02-01", "compare_to": "2026-01-01"},
    )
    assert error["details"]["field"] == "compare_from"
    error = refused(reader, "compare_periods", {**MARCH, "metric": "everything"})
    assert error["code"] == "validation_error" and error["details"]["field"] == "metric"


def test_it_refuses_unknown_reports_and_oversized_exports(alice, reader):
    assert refused(reader, "export_csv", {"report": "secrets"})["details"]["field"] == "report"
    assert refused(reader, "export_csv", {"report": "calls", "max_rows": 0})["details"]["field"] == "max_rows"
    assert (
        refused(reader, "export_csv", {"report": "calls", "max_rows": 10**6})["details"]["field"]
        == "max_rows"
    )


@pytest.mark.parametrize("name", BRANCHED)
def test_it_answers_another_tenants_branch_like_an_unknown_one(salon, bob_reader, name):
    theirs = refused(bob_reader, name, params(name, branch_id=salon["main"].pk))
    unknown = refused(bob_reader, name, params(name, branch_id=10**12))
    assert theirs["code"] == unknown["code"] == "not_found"
    assert theirs["details"] == unknown["details"] == {"field": "branch_id"}
    assert theirs["message"].replace(str(salon["main"].pk), "N") == unknown["message"].replace(
        str(10**12), "N"
    )


def test_it_never_shows_one_tenants_figures_to_another(salon, reader, bob_reader, bob_key):
    assert op(reader, "get_overview", MARCH)["calls"]["current"] == 5
    bob = op(bob_reader, "get_overview", MARCH)
    assert all(bob[k]["current"] == 0 for k in ("calls", "appointments", "visits", "bookings", "revenue"))
    assert op(bob_reader, "get_utilisation", MARCH)["staff"] == []
    assert op(bob_reader, "get_revenue", MARCH)["by_branch"] == []
    assert (
        op(bob_reader, "get_customer_cohorts", {"date_from": "2025-10-01", "date_to": "2026-03-31"})[
            "at_risk_count"
        ]
        == 0
    )
    assert "Anna" not in op(bob_reader, "export_csv", {**MARCH, "report": "utilisation"})["csv"]
    # A tenant key cannot name another tenant.
    from mcp_core.api_keys import api_key_authenticate
    from mcp_core.pipeline import call_operation

    response = call_operation(
        "analytics", "get_overview", MARCH, principal=api_key_authenticate(bob_key), tenant="alice-salon"
    )
    assert not response.success and response.error["code"] in ("forbidden", "not_found")


def test_it_says_it_needs_postgresql_on_sqlite(alice, reader, monkeypatch):
    from django.db import connection

    from mcp_servers.analytics import reports

    monkeypatch.setattr(connection, "vendor", "sqlite")
    with pytest.raises(Exception) as caught:
        reports.require_postgres()
    assert caught.value.code == "not_configured" and "PostgreSQL" in caught.value.message
