"""The Analytics page shows a tenant's figures for the chosen period as inline SVG charts, through
the analytics operations with the operator's own rights."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model

from dashboard.analytics_page import HEADLINES
from mcp_core.models import AuditEntry, OperatorAccess
from mcp_servers.analytics.tests.conftest import MARCH, op, reader, salon  # noqa: F401 - the fixtures
from mcp_servers.analytics.tests.test_messaging import reminded  # noqa: F401 - the fixture


def test_it_shows_the_figures_of_a_period_as_charts(operator_client, salon):  # noqa: F811
    response = operator_client.get("/admin/analytics/", {"tenant": "alice-salon", **MARCH})
    assert response.status_code == 200
    html = response.content.decode()
    assert "2026-03-01 – 2026-03-31 (31 days, Europe/Berlin)" in html
    assert re.search(r'Calls</span><span class="stat-value">5</span><span class="help">before: 2 · ', html)
    assert "+150.0 %" in html
    assert html.count('<svg class="a-chart"') == 7 and "<script" not in html.split("analytics-picker")[1]
    assert "<title>Mon 10:00: 3 calls</title>" in html  # the heat map's busiest cell
    assert "<td>Lapsed Rita</td><td>3</td><td>30.5</td><td>120.5</td>" in html  # at risk as of 1 April
    assert "1 staff member(s) have no working hours recorded" in html
    # every operation was called once through the pipeline, as the operator
    rows = AuditEntry.objects.filter(service="analytics", principal="user:ops")
    assert sorted(rows.values_list("operation", flat=True)) == sorted(
        ["get_call_funnel", "get_appointment_stats", "get_utilisation", "get_revenue",
         "get_customer_cohorts", "get_messaging"]
    )  # fmt: skip


@pytest.mark.parametrize("branch", [None, "north"])
def test_it_takes_the_headline_figures_from_other_answers_equal_to_get_overview(salon, reader, branch):  # noqa: F811
    params = {**MARCH, **({"branch_id": salon[branch].pk} if branch else {})}
    overview = op(reader, "get_overview", params)
    named = {"missed_rate": "missed_call_rate"}  # the funnel's name of the overview's figure
    for operation, key, _, _ in HEADLINES:
        assert op(reader, operation, params)[key] == overview[named.get(key, key)], key


def test_it_shows_delivery_and_the_no_show_rate_of_reminded_appointments(operator_client, reminded):  # noqa: F811
    response = operator_client.get("/admin/analytics/", {"tenant": "alice-salon", **MARCH})
    html = response.content.decode()
    assert "<td>sms</td><td>3</td><td>2</td><td>0</td><td>1</td><td>0</td><td>67 %</td><td>–</td>" in html
    assert "<td>all</td><td>6</td><td>4</td><td>1</td><td>1</td><td>1</td><td>80 %</td>" in html
    assert "No-show rate: reminded 1 of 2, not reminded 3 of 5 appointments" in html
    assert "<title>Reminded, period: 50</title>" in html and "<title>Not reminded, period: 60</title>" in html
    # Another tenant's page shows its own message only.
    bob = operator_client.get("/admin/analytics/", {"tenant": "bob-practice", **MARCH}).content.decode()
    assert "<td>all</td><td>1</td><td>1</td><td>0</td><td>0</td><td>0</td><td>100 %</td>" in bob
    assert "reminded 0 of 0, not reminded 0 of 0" in bob


def test_it_narrows_the_page_to_one_branch(operator_client, salon):  # noqa: F811
    response = operator_client.get(
        "/admin/analytics/", {"tenant": "alice-salon", "branch_id": salon["north"].pk, **MARCH}
    )
    html = response.content.decode()
    assert re.search(r'Calls</span><span class="stat-value">0</span>', html)
    assert re.search(r'Appointments</span><span class="stat-value">1</span>', html)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"date_from": "2026-03-31", "date_to": "2026-03-01"}, "date_from"),
        ({"date_from": "2020-01-01", "date_to": "2026-01-01"}, "date_to"),
        ({"date_from": "0001-01-01"}, "date_from"),
        ({"date_from": "not-a-date"}, "date_from"),
        ({"branch_id": "abc"}, "branch_id"),
    ],
)
def test_it_names_the_field_of_a_bad_period(operator_client, salon, params, field):  # noqa: F811
    response = operator_client.get("/admin/analytics/", {"tenant": "alice-salon", **params})
    assert response.status_code == 400
    assert re.search(rf'id="analytics-error">{field}: ', response.content.decode())
    assert AuditEntry.objects.filter(service="analytics").count() == 1  # one refusal, not six


def test_it_shows_an_operator_only_the_tenants_granted(client, salon):  # noqa: F811
    user = get_user_model().objects.create_user("bobs-ops", password="pw-123456789", is_staff=True)
    grant = OperatorAccess.objects.create(name="bob analytics", user=user, scopes=["analytics:read"])
    grant.tenants.set([salon["bob"]])
    client.force_login(user)
    html = client.get("/admin/analytics/").content.decode()
    assert "Bob&#x27;s Practice" in html and "Alice&#x27;s Salon" not in html
    response = client.get("/admin/analytics/", {"tenant": "alice-salon", **MARCH})
    html = response.content.decode()
    assert 'id="analytics-error"' in html and "stat-value" not in html
    assert ">North<" not in html  # nor Alice's branches in the picker
    export = client.get("/admin/analytics/export.csv", {"tenant": "alice-salon", "report": "daily"})
    assert export.status_code == 403 and b"date," not in export.content


def test_it_downloads_a_report_as_csv(operator_client, salon):  # noqa: F811
    response = operator_client.get(
        "/admin/analytics/export.csv", {"tenant": "alice-salon", "report": "daily", **MARCH}
    )
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert 'filename="alice-salon-daily-2026-03-01-2026-03-31.csv"' in response["Content-Disposition"]
    assert response.content.decode().splitlines()[2] == "2026-03-02,2,1,0,1,0,0,0,0"
    bad = operator_client.get("/admin/analytics/export.csv", {"tenant": "alice-salon", "report": "nope"})
    assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "report"


def test_it_requires_a_staff_login_for_analytics(client):
    assert client.get("/admin/analytics/").status_code == 302


@pytest.mark.django_db(transaction=True)
def test_it_reads_the_figures_on_connections_of_their_own_outside_a_transaction(
    operator_client,
    salon,  # noqa: F811
    monkeypatch,
):
    import threading

    from dashboard import services

    threads = []
    in_own_thread = services._in_own_thread

    def spy(call, name):
        threads.append((name, threading.current_thread().name))
        return in_own_thread(call, name)

    monkeypatch.setattr(services, "_in_own_thread", spy)
    html = operator_client.get("/admin/analytics/", {"tenant": "alice-salon", **MARCH}).content.decode()
    # the same figures as inside a transaction (test_it_shows_the_figures_of_a_period_as_charts)
    assert re.search(r'Calls</span><span class="stat-value">5</span><span class="help">before: 2 · ', html)
    assert "<td>Lapsed Rita</td><td>3</td><td>30.5</td><td>120.5</td>" in html
    assert html.count('<svg class="a-chart"') == 7
    assert sorted(name for name, _ in threads) == sorted(services.ANALYTICS_PAGE_OPERATIONS[1:])
    assert all(thread.startswith("analytics-page") for _, thread in threads)
    assert AuditEntry.objects.filter(service="analytics", principal="user:ops").count() == 6
