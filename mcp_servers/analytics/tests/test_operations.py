"""The analytics operations give the figures counted by hand from the salon built in conftest.py
(March 2026 against 29 January - 28 February 2026), each in one SQL statement."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mcp_servers.analytics import reports
from mcp_servers.analytics.schemas import (
    AppointmentStatsParams,
    CohortParams,
    ComparePeriodsParams,
    ExportParams,
    PeriodParams,
)

from .conftest import MARCH, op


def pairs(data: dict, *names: str) -> dict:
    return {name: (data[name]["current"], data[name]["previous"]) for name in names}


def test_it_gives_the_headline_figures_with_the_previous_period(salon, reader):
    data = op(reader, "get_overview", MARCH)
    assert data["period"] == {
        "date_from": "2026-03-01",
        "date_to": "2026-03-31",
        "days": 31,
        "timezone": "Europe/Berlin",
        "previous_from": "2026-01-29",
        "previous_to": "2026-02-28",
    }
    assert pairs(data, *[k for k in data if k not in ("period", "currency")]) == {
        "calls": (5, 2),
        "answered_calls": (3, 1),  # calls 1, 4, 5 / call 6
        "missed_calls": (1, 1),  # call 3 (error) / call 7 (dial_no_answer)
        "booked_calls": (2, 1),  # calls 1 and 4 (cancelled later, still booked); call 5's failed
        "unknown_callers": (2, 1),
        "booking_rate": (0.4, 0.5),
        "unknown_caller_rate": (0.4, 0.5),
        "missed_call_rate": (0.2, 0.5),
        "appointments": (5, 1),
        "visits": (2, 1),  # A1 completed, A6 scheduled / A4
        "cancellations": (1, 0),
        "no_shows": (1, 0),
        "bookings": (5, 1),  # made in the period (created_at)
        "new_customers": (1, 0),  # Emil's first visit is A6
        "revenue": (150.0, 40.0),  # paid EUR invoices only
    }
    assert data["calls"]["change"] == 3 and data["calls"]["change_pct"] == 150.0
    assert data["cancellations"]["change_pct"] is None  # nothing to compare with
    assert data["currency"] == "EUR"


def test_it_narrows_the_figures_to_one_branch(salon, reader):
    data = op(reader, "get_overview", {**MARCH, "branch_id": salon["north"].pk})
    assert pairs(data, "calls", "appointments", "visits", "bookings", "revenue", "new_customers") == {
        "calls": (0, 0),
        "appointments": (1, 0),
        "visits": (1, 0),
        "bookings": (1, 0),
        "revenue": (80.0, 0),
        "new_customers": (1, 0),
    }


def test_it_follows_calls_to_bookings(salon, reader):
    data = op(reader, "get_call_funnel", MARCH)
    assert pairs(data, "calls", "answered", "transferred", "missed", "in_progress", "booked", "attended") == {
        "calls": (5, 2),
        "answered": (3, 1),
        "transferred": (1, 0),
        "missed": (1, 1),
        "in_progress": (0, 0),
        "booked": (2, 1),
        "attended": (1, 1),
    }
    assert pairs(data, "unknown_callers", "successful", "transfer_rate", "unknown_caller_rate") == {
        "unknown_callers": (2, 1),
        "successful": (1, 0),
        "transfer_rate": (0.2, 0.0),
        "unknown_caller_rate": (0.4, 0.5),
    }
    # durations 0, 60, 90, 120, 300 s / 50, 100 s
    assert pairs(
        data, "avg_duration_sec", "median_duration_sec", "p90_duration_sec", "total_duration_sec"
    ) == {
        "avg_duration_sec": (114.0, 75.0),
        "median_duration_sec": (90, 75),
        "p90_duration_sec": (228, 95),  # 120 + 0.6 * (300 - 120); 50 + 0.9 * 50
        "total_duration_sec": (570, 150),
    }
    assert data["funnel"] == [
        {"stage": "calls", "calls": 5, "share_of_calls": 1.0},
        {"stage": "answered", "calls": 3, "share_of_calls": 0.6},
        {"stage": "booked", "calls": 2, "share_of_calls": 0.4},
        {"stage": "attended", "calls": 1, "share_of_calls": 0.2},
    ]
    # local (Berlin) weekday and hour: Monday 10:15, 10:40, 10:05; Tuesday 11:00; Wednesday 15:00
    assert data["by_hour"] == [
        {"weekday": 1, "hour": 10, "calls": 3, "missed": 0, "booked": 2},
        {"weekday": 2, "hour": 11, "calls": 1, "missed": 1, "booked": 0},
        {"weekday": 3, "hour": 15, "calls": 1, "missed": 0, "booked": 0},
    ]
    assert data["outcomes"] == [
        {"reason": "user_hangup", "handling": "answered", "calls": 2},
        {"reason": "agent_hangup", "handling": "answered", "calls": 1},
        {"reason": "call_transfer", "handling": "transferred", "calls": 1},
        {"reason": "error_llm_websocket_open", "handling": "missed", "calls": 1},
    ]


def test_it_counts_appointments_lead_times_and_busiest_slots(salon, reader):
    data = op(reader, "get_appointment_stats", {**MARCH, "busiest_slots": 5})
    assert pairs(
        data, "appointments", "visits", "completed", "upcoming_or_open", "cancellations", "no_shows", "failed"
    ) == {
        "appointments": (5, 1),
        "visits": (2, 1),
        "completed": (1, 1),
        "upcoming_or_open": (1, 0),
        "cancellations": (1, 0),
        "no_shows": (1, 0),
        "failed": (1, 0),
    }
    assert pairs(data, "bookings", "cancellation_rate", "no_show_rate", "booked_minutes") == {
        "bookings": (5, 1),
        "cancellation_rate": (0.2, 0.0),
        "no_show_rate": (0.5, 0.0),  # one no-show among one completed and one no-show
        "booked_minutes": (75, 60),  # A1 30 + A6 45 / A4 60
    }
    # lead times (hours) of the appointments that did not fail: 71.72, 99.83, 310, 24 / 96.97
    assert pairs(data, "avg_lead_time_hours", "median_lead_time_hours") == {
        "avg_lead_time_hours": (126.4, 97.0),
        "median_lead_time_hours": (85.8, 97.0),
    }
    assert data["busiest_slots"] == [
        {"weekday": 1, "hour": 9, "appointments": 1},
        {"weekday": 4, "hour": 10, "appointments": 1},
    ]
    assert [(d["date"], d["appointments"], d["cancellations"], d["no_shows"]) for d in data["daily"]] == [
        ("2026-03-05", 1, 0, 0),
        ("2026-03-12", 1, 0, 0),
        ("2026-03-13", 1, 1, 0),
        ("2026-03-14", 1, 0, 1),
        ("2026-03-16", 1, 0, 0),
    ]


def test_it_sets_booked_minutes_against_working_hours(salon, reader):
    data = op(reader, "get_utilisation", MARCH)
    staff = {s["name"]: s for s in data["staff"]}
    # Anna: 22 weekdays x 480 min in March, and 22 in the previous period; A1 (30 min) booked.
    assert pairs(staff["Anna"], "appointments", "booked_minutes", "working_minutes", "utilisation") == {
        "appointments": (1, 0),
        "booked_minutes": (30, 0),
        "working_minutes": (10560, 10560),
        "utilisation": (0.0028, 0.0),
    }
    # Ben: 4 Saturdays x 240 min in March, 5 before; his March appointments failed or no-showed.
    assert pairs(staff["Ben"], "booked_minutes", "working_minutes", "utilisation") == {
        "booked_minutes": (0, 60),
        "working_minutes": (960, 1200),
        "utilisation": (0.0, 0.05),
    }
    # Cleo has no working hours: her booked minutes count, her utilisation is unknown, not invented.
    assert pairs(staff["Cleo"], "booked_minutes", "working_minutes", "utilisation") == {
        "booked_minutes": (45, 0),
        "working_minutes": (None, None),
        "utilisation": (None, None),
    }
    assert data["staff_without_hours"] == [salon["staff"]["cleo"].pk]
    branches = {b["name"]: b for b in data["branches"]}
    assert pairs(branches["Main"], "booked_minutes", "working_minutes", "utilisation") == {
        "booked_minutes": (30, 60),
        "working_minutes": (11520, 11760),
        "utilisation": (0.0026, 0.0051),
    }
    assert branches["North"]["utilisation"]["current"] is None
    only_north = op(reader, "get_utilisation", {**MARCH, "branch_id": salon["north"].pk})
    assert [s["name"] for s in only_north["staff"]] == ["Cleo"]


def test_it_builds_cohorts_and_finds_regulars_at_risk(salon, reader):
    data = op(reader, "get_customer_cohorts", {"date_from": "2025-10-01", "date_to": "2026-03-31"})
    assert data["cohorts"] == [
        {"month": "2025-10-01", "customers": 1, "retained": [1, 1, 1], "retention": [1.0, 1.0, 1.0]},
        {"month": "2025-12-01", "customers": 1, "retained": [1, 1, 1, 1], "retention": [1.0] * 4},
        {"month": "2026-03-01", "customers": 1, "retained": [1], "retention": [1.0]},
    ]
    assert pairs(data, "new_customers", "returning_customers") == {
        "new_customers": (3, 0),
        "returning_customers": (0, 0),
    }
    # Rita: visits 1 Oct, 1 Nov, 1 Dec 2025 (gaps 31 d 1 h and 30 d), none since; as of
    # 1 April 2026 00:00 Berlin she is 120.5 days away, 90 days past her usual gap.
    assert data["as_of"] == "2026-04-01T00:00:00+02:00"
    assert data["at_risk_count"] == 1
    assert data["at_risk"] == [
        {
            "customer_id": salon["customers"]["c4"].pk,
            "name": "Lapsed Rita",
            "visits": 3,
            "last_visit": "2025-12-01T09:00:00Z",
            "avg_gap_days": 30.5,
            "days_since_last_visit": 120.5,
            "days_overdue": 90.0,
        }
    ]
    march = op(reader, "get_customer_cohorts", MARCH)
    assert pairs(march, "new_customers", "returning_customers") == {
        "new_customers": (1, 0),  # Emil
        "returning_customers": (1, 1),  # Carla both times
    }
    # A stricter definition of "regular" leaves Rita out.
    assert op(reader, "get_customer_cohorts", {**MARCH, "at_risk_min_visits": 4})["at_risk_count"] == 0


def test_it_splits_revenue_by_branch_service_and_staff(salon, reader):
    data = op(reader, "get_revenue", MARCH)
    assert pairs(data, "revenue", "invoices", "stripe", "local", "visits", "average_per_visit") == {
        "revenue": (150.0, 40.0),
        "invoices": (3, 1),
        "stripe": (50.0, 40.0),
        "local": (100.0, 0),
        "visits": (2, 1),
        "average_per_visit": (75.0, 40.0),
    }

    def rows(kind):
        return {r["name"]: pairs(r, "revenue", "visits", "average_per_visit") for r in data[kind]}

    assert rows("by_branch") == {
        "North": {"revenue": (80.0, 0), "visits": (1, 0), "average_per_visit": (80.0, None)},
        "Main": {"revenue": (50.0, 40.0), "visits": (1, 1), "average_per_visit": (50.0, 40.0)},
        None: {"revenue": (20.0, 0), "visits": (0, 0), "average_per_visit": (None, None)},  # unlinked
    }
    assert rows("by_service")["Cut"]["revenue"] == (80.0, 0)
    assert rows("by_staff")["Ben"] == {
        "revenue": (0, 40.0),
        "visits": (0, 1),
        "average_per_visit": (None, 40.0),
    }


def test_it_compares_two_periods_day_by_day_and_week_by_week(salon, reader):
    weekly = op(reader, "compare_periods", {**MARCH, "metric": "calls", "granularity": "week"})
    assert weekly["total"] == {"current": 5, "previous": 2, "change": 3, "change_pct": 150.0}
    assert [
        (p["period_start"], p["period_value"], p["compare_start"], p["compare_value"])
        for p in weekly["series"]
    ] == [
        ("2026-03-01", 3, "2026-01-29", 0),
        ("2026-03-08", 2, "2026-02-05", 1),
        ("2026-03-15", 0, "2026-02-12", 1),
        ("2026-03-22", 0, "2026-02-19", 0),
        ("2026-03-29", 0, "2026-02-26", 0),
    ]
    february = op(
        reader,
        "compare_periods",
        {**MARCH, "metric": "revenue", "compare_from": "2026-02-01", "compare_to": "2026-02-28"},
    )
    assert february["compare_period"] == {"date_from": "2026-02-01", "date_to": "2026-02-28", "days": 28}
    assert february["total"]["current"] == 150.0 and february["total"]["previous"] == 40.0
    series = february["series"]
    assert len(series) == 31 and series[4]["period_value"] == 50.0 and series[13]["compare_value"] == 40.0
    assert series[30]["compare_start"] is None and series[30]["compare_value"] is None  # February is shorter
    booked = op(reader, "compare_periods", {**MARCH, "metric": "booked_calls"})
    assert booked["total"]["current"] == 2 and booked["total"]["previous"] == 1


def test_it_exports_csv_within_its_row_cap(salon, reader):
    daily = op(reader, "export_csv", {**MARCH, "report": "daily"})
    table = list(csv.reader(io.StringIO(daily["csv"])))
    assert table[0] == ["date", "calls", "answered_calls", "missed_calls", "booked_calls", "appointments",
                        "cancellations", "no_shows", "revenue"]  # fmt: skip
    assert len(table) == 32 and daily["rows"] == 31 and daily["truncated"] is False
    assert table[2] == ["2026-03-02", "2", "1", "0", "1", "0", "0", "0", "0"]
    assert table[5] == ["2026-03-05", "0", "0", "0", "0", "1", "0", "0", "50.00"]
    assert daily["filename"] == "alice-salon-daily-2026-03-01-2026-03-31.csv"
    calls = op(reader, "export_csv", {**MARCH, "report": "calls", "max_rows": 3})
    assert (calls["rows"], calls["truncated"], calls["max_rows"]) == (3, True, 3)
    assert len(calls["csv"].splitlines()) == 4
    revenue = list(csv.reader(io.StringIO(op(reader, "export_csv", {**MARCH, "report": "revenue"})["csv"])))
    assert ["branch", str(salon["north"].pk), "North", "80.0", "1", "1", "80.0"] in revenue


def test_it_keeps_a_spreadsheet_from_reading_a_name_as_a_formula(salon, reader):
    salon["staff"]["anna"].__class__.objects.filter(pk=salon["staff"]["anna"].pk).update(name="=HYPERLINK(1)")
    text = op(reader, "export_csv", {**MARCH, "report": "utilisation"})["csv"]
    assert "'=HYPERLINK(1)" in text and ",=HYPERLINK" not in text


@pytest.mark.parametrize(
    ("report", "params"),
    [
        (reports.overview, PeriodParams),
        (reports.call_funnel, PeriodParams),
        (reports.appointment_stats, AppointmentStatsParams),
        (reports.utilisation, PeriodParams),
        (reports.customer_cohorts, CohortParams),
        (reports.revenue, PeriodParams),
        (reports.compare_periods, ComparePeriodsParams),
    ],
)
def test_it_reads_each_report_with_one_statement(salon, report, params):
    extra = {"metric": "calls"} if params is ComparePeriodsParams else {}
    with CaptureQueriesContext(connection) as queries:
        report(salon["alice"], params(date_from=dt.date(2026, 3, 1), **extra))
    assert len(queries.captured_queries) == 1, [q["sql"][:80] for q in queries.captured_queries]
    # and one more, the branch's check, when a branch is named
    with CaptureQueriesContext(connection) as queries:
        report(salon["alice"], params(branch_id=salon["main"].pk, **extra))
    assert len(queries.captured_queries) == 2


def test_it_exports_with_a_bounded_number_of_statements(salon, django_assert_max_num_queries):
    for kind in ("daily", "calls", "utilisation", "revenue"):
        with django_assert_max_num_queries(1):
            reports.export_csv(salon["alice"], ExportParams(report=kind))


def test_it_gives_the_same_figures_over_http(salon, client, key_factory, platform_key):
    key = key_factory(tenant=salon["alice"], scopes=["analytics:read"])
    response = client.post(
        "/api/v1/mcp/call",
        data={"service": "analytics", "operation": "get_overview", "params": MARCH},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["data"]["calls"]["current"] == 5
    response = client.post(
        "/api/v1/mcp/call",
        data={"service": "analytics", "operation": "get_revenue", "params": MARCH, "tenant": "alice-salon"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {platform_key}",
    )
    assert response.json()["data"]["revenue"]["current"] == 150.0


def test_it_reports_healthy_on_postgresql(db):
    from mcp_core.registry import get_registry

    assert get_registry().get_server("analytics").health().status == "healthy"


def test_it_lets_an_operator_enter_working_hours_on_the_staff_page(salon, client, django_user_model):
    from askpro.models import WorkingHours

    client.force_login(django_user_model.objects.create_superuser("hr", "hr@example.com", "pw-123456789"))
    cleo = salon["staff"]["cleo"]
    form = {
        "company": salon["alice"].pk,
        "branch": salon["north"].pk,
        "name": "Cleo",
        "email": "",
        "phone": "",
        "is_active": "on",
        "is_bookable": "on",
        "working_hours-TOTAL_FORMS": "1",
        "working_hours-INITIAL_FORMS": "0",
        "working_hours-0-weekday": "1",
        "working_hours-0-starts": "09:00",
        "working_hours-0-ends": "12:00",
    }
    response = client.post(f"/admin/askpro/staff/{cleo.pk}/change/", form)
    assert response.status_code == 302, response.content[:2000]
    row = WorkingHours.objects.get(staff=cleo)
    assert (row.company_id, row.weekday, str(row.starts), str(row.ends)) == (
        salon["alice"].pk,
        1,
        "09:00:00",
        "12:00:00",
    )
