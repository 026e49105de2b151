"""The pages through Django's test client: figures, actions, and query counts that do not grow
with the data."""

from __future__ import annotations

import json
from datetime import timedelta as td

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from dashboard.engine import ImprovementEngine
from dashboard.engine.base import Analyzer, Finding
from dashboard.models import HealthCheckResult, ImprovementRun, Recommendation
from dashboard.rollups import compact_hourly
from dashboard.selectors import monitoring_data
from mcp_core.metrics import bucket_index
from mcp_core.models import AuditEntry, MetricRollup

from .factories import audit

pytestmark = pytest.mark.django_db


def _traffic(tenants, *, minutes: int, per_minute: int, hours_back: int = 0) -> None:
    """Calls on two services for each tenant, over `minutes` minutes, plus refusals and errors.

    Rollup rows are bulk-inserted with the counts the recorder would have written."""
    now = timezone.now().replace(second=0, microsecond=0)
    rows = []
    for tenant in tenants:
        for m in range(minutes):
            at = now - td(hours=hours_back, minutes=m)
            rows.append(
                MetricRollup(
                    minute=at,
                    service="database",
                    operation="search",
                    tenant_id=tenant.pk,
                    calls=per_minute,
                    service_failures=1,
                    total_ms=12.0 * per_minute,
                    max_ms=12.0,
                    **{f"b{bucket_index(12)}": per_minute},
                )
            )
            rows.append(
                MetricRollup(
                    minute=at,
                    service="calcom",
                    operation="get_slots",
                    tenant_id=tenant.pk,
                    calls=per_minute,
                    service_failures=0,
                    total_ms=300.0 * per_minute,
                    max_ms=300.0,
                    **{f"b{bucket_index(300)}": per_minute},
                )
            )
        audit(service="database", operation="search", error_code="rate_limited", tenant_id=tenant.pk)
        audit(
            service="database",
            operation="search",
            error_code="upstream_error",
            message="db gone",
            tenant_id=tenant.pk,
        )
    MetricRollup.objects.bulk_create(rows)


def _count_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    return len(ctx.captured_queries)


PAGES = [
    "admin:dashboard",
    "admin:monitoring",
    "admin:improvements",
    "admin:console",
]


def test_it_makes_the_same_number_of_queries_whatever_the_amount_of_data(
    operator_client, alice, bob, make_more_tenants
):
    urls = (
        [reverse(name) for name in PAGES]
        + [
            reverse(name) + f"?window={window}"
            for name in ("admin:monitoring", "admin:monitoring_data")
            for window in ("1h", "24h", "7d")
        ]
        + [reverse("admin:console") + "?op=database.search"]
    )
    _traffic([alice], minutes=3, per_minute=2)
    _seed_recommendations(2)
    compact_hourly()
    small = {url: _count_queries(operator_client, url) for url in urls}
    _traffic([bob, *make_more_tenants], minutes=50, per_minute=5)
    _traffic([alice, bob], minutes=60, per_minute=5, hours_back=30)
    _seed_recommendations(40)
    compact_hourly()
    ImprovementRun.objects.create(trigger="test", findings=1)
    large = {url: _count_queries(operator_client, url) for url in urls}
    assert small == large


@pytest.fixture
def make_more_tenants(db):
    from conftest import make_tenant

    return [make_tenant(f"extra-{i}", phone=f"+49301000{i:03d}") for i in range(3)]


def _seed_recommendations(n: int) -> None:
    start = Recommendation.objects.count()
    Recommendation.objects.bulk_create(
        Recommendation(
            analyzer="slow_operations",
            fingerprint=f"fp-{start + i}",
            severity="medium",
            title=f"finding {start + i}",
            evidence={"calls": i},
            suggested_action="do something",
        )
        for i in range(n)
    )


def test_it_shows_each_server_with_its_last_hour_and_last_error(operator_client, alice):
    _traffic([alice], minutes=10, per_minute=3)
    HealthCheckResult.objects.create(service="database", status="healthy", latency_ms=3.2)
    page = operator_client.get(reverse("admin:dashboard")).content.decode()
    card = page[page.index('data-service="database"') :]
    card = card[: card.index("</article>")]
    assert 'data-testid="calls">30<' in card  # 10 minutes x 3 calls
    assert "33.3 % (10 of 30)" in card
    assert "upstream_error" in card and "db gone" in card
    assert 'data-testid="status">healthy<' in card


def test_it_runs_the_checks_on_demand_and_stores_them(operator_client):
    response = operator_client.post(reverse("admin:dashboard"))
    assert response.status_code == 302
    stored = {r.service: r.status for r in HealthCheckResult.objects.all()}
    assert stored["database"] == "healthy"
    assert set(stored.values()) <= {"healthy", "degraded", "unhealthy", "not_configured"}
    page = operator_client.get(reverse("admin:dashboard")).content.decode()
    assert 'data-testid="aggregate">' in page


def test_it_requires_a_staff_login(client):
    for name in PAGES + ["admin:monitoring_data"]:
        response = client.get(reverse(name))
        assert response.status_code == 302
        assert "/login/" in response["Location"]


def test_it_serves_monitoring_figures_from_the_rollups(operator_client, alice, bob):
    _traffic([alice, bob], minutes=5, per_minute=4)
    data = operator_client.get(reverse("admin:monitoring_data") + "?window=1h").json()
    services = {s["service"]: s for s in data["services"]}
    assert services["database"]["calls"] == 40
    assert services["database"]["service_failures"] == 10
    assert services["calcom"]["p50_ms"] is not None and 250 < services["calcom"]["p50_ms"] <= 300
    assert data["totals"]["calls"] == 80
    assert len(data["series"]) == 60
    refusals = {(r["tenant"], r["service"]): r for r in data["refusals"]}
    assert refusals[("Alice's Salon", "database")]["rate_limited"] == 1


def test_it_gives_the_same_7_day_answer_with_or_without_the_hourly_compaction(alice):
    _traffic([alice], minutes=30, per_minute=3, hours_back=5)
    _traffic([alice], minutes=5, per_minute=3)
    before = monitoring_data("7d")
    compact_hourly()
    after = monitoring_data("7d")
    assert before["services"] == after["services"]
    assert before["totals"] == after["totals"]
    assert [p["calls"] for p in before["series"]] == [p["calls"] for p in after["series"]]


def test_it_refuses_an_unknown_window_with_a_clear_error(operator_client):
    response = operator_client.get(reverse("admin:monitoring_data") + "?window=2y")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "window"


class _Always(Analyzer):
    name = "always"
    description = "finds one thing"
    defaults = {}

    def analyze(self, ctx):
        return [Finding("thing", "high", "A thing", {"n": 1}, "Fix it")]


class _Broken(Analyzer):
    name = "broken"
    description = "fails"
    defaults = {}

    def analyze(self, ctx):
        raise RuntimeError("catalog unreadable")


def test_it_updates_the_open_recommendation_when_a_finding_repeats():
    engine = ImprovementEngine([_Always(), _Broken()])
    first = engine.run(trigger="test")
    second = engine.run(trigger="test")
    rec = Recommendation.objects.get(analyzer="always")
    assert rec.times_seen == 2
    assert (first.created, second.created, second.updated) == (1, 0, 1)
    assert second.errors == [{"analyzer": "broken", "error": "RuntimeError: catalog unreadable"}]


def test_it_does_not_reopen_a_recently_dismissed_finding(operator_client, operator):
    engine = ImprovementEngine([_Always()])
    engine.run(trigger="test")
    rec = Recommendation.objects.get()
    operator_client.post(reverse("admin:improvement_action", args=[rec.pk, "dismiss"]))
    engine.run(trigger="test")
    assert list(Recommendation.objects.values_list("status", flat=True)) == ["dismissed"]


def test_it_accepts_and_dismisses_from_the_page_and_refuses_a_bad_transition(operator_client):
    ImprovementEngine([_Always()]).run(trigger="test")
    rec = Recommendation.objects.get()
    operator_client.post(reverse("admin:improvement_action", args=[rec.pk, "accept"]))
    rec.refresh_from_db()
    assert (rec.status, rec.status_changed_by) == ("accepted", "ops")
    response = operator_client.post(reverse("admin:improvement_action", args=[rec.pk, "accept"]), follow=True)
    assert "cannot be accepted" in response.content.decode()
    operator_client.post(reverse("admin:improvement_action", args=[rec.pk, "dismiss"]))
    rec.refresh_from_db()
    assert rec.status == "dismissed"
    assert (
        operator_client.get(reverse("admin:improvement_action", args=[rec.pk, "accept"])).status_code == 405
    )


def test_it_heals_only_when_enabled_and_audits_it(settings):
    class _Healing(_Always):
        name = "healing"
        can_heal = True

        def heal(self, finding, ctx):
            return "did the safe thing"

    ImprovementEngine([_Healing()]).run(trigger="test")
    assert Recommendation.objects.get().status == "open"
    assert not AuditEntry.objects.filter(service="improvements").exists()
    Recommendation.objects.all().delete()
    settings.IMPROVEMENT_SELF_HEALING = ["healing"]
    run = ImprovementEngine([_Healing()]).run(trigger="test")
    rec = Recommendation.objects.get()
    assert (rec.status, rec.note) == ("applied", "did the safe thing")
    assert run.healed[0]["note"] == "did the safe thing"
    entry = AuditEntry.objects.get(service="improvements")
    assert (entry.operation, entry.outcome, entry.transport) == ("heal_healing", "success", "engine")


def test_it_runs_the_real_engine_from_the_page(operator_client):
    response = operator_client.post(reverse("admin:improvements"), follow=True)
    run = ImprovementRun.objects.get()
    assert run.trigger == "page" and run.finished_at is not None
    assert run.errors == []
    names = [a["name"] for a in run.analyzers]
    assert "slow_operations" in names and "unbooked_calls" in names
    assert "Analysis finished" in response.content.decode()


def test_it_shows_the_commands_progress_and_a_summary():
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("run_improvements", stdout=out)
    text = out.getvalue()
    assert "[1/" in text and "slow_operations" in text
    assert "queue_backlog: skipped" in text
    assert "finding(s)" in text.splitlines()[-1]


def test_it_writes_the_schedule_to_celery_beat_idempotently():
    from io import StringIO

    from django.core.management import call_command

    call_command("setup_periodic_tasks", stdout=StringIO())
    call_command("setup_periodic_tasks", stdout=StringIO())
    task = PeriodicTask.objects.get(task="dashboard.improvements_run")
    assert (task.crontab.minute, task.crontab.hour, task.enabled) == ("7", "*", True)
    assert PeriodicTask.objects.filter(task__startswith="dashboard.").count() == 3


def test_it_runs_a_console_operation_as_the_operator_and_audits_it(operator_client, alice):
    url = reverse("admin:console") + "?op=database.get_tenant_stats"
    page = operator_client.get(url).content.decode()
    assert 'name="tenant"' in page
    response = operator_client.post(url, {"op": "database.get_tenant_stats", "tenant": alice.slug})
    body = response.content.decode()
    assert 'data-testid="response-status">success<' in body
    entry = AuditEntry.objects.get(operation="get_tenant_stats")
    assert (entry.transport, entry.principal, entry.tenant_id) == ("console", "user:ops", alice.pk)


def test_it_builds_console_fields_from_the_schema_and_shows_validation_errors(operator_client, alice):
    url = reverse("admin:console") + "?op=database.search"
    page = operator_client.get(url).content.decode()
    assert 'name="p_query"' in page and 'name="p_tables"' in page and 'name="p_limit"' in page
    response = operator_client.post(
        url, {"op": "database.search", "tenant": alice.slug, "p_query": "Alice", "p_limit": "500"}
    )
    body = response.content.decode()
    assert "less than or equal to 50" in body  # refused by the form before any call
    assert not AuditEntry.objects.filter(operation="search").exists()
    response = operator_client.post(
        url, {"op": "database.search", "tenant": alice.slug, "p_query": "alice", "p_tables": ["customers"]}
    )
    data = json.loads(response.context["response"])
    assert data["success"] is True
    assert data["metadata"]["tenant_id"] == alice.pk


def test_it_runs_the_console_for_a_staff_operator_with_read_scopes_only(client, alice):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    from mcp_core.models import OperatorAccess

    staff = get_user_model().objects.create_user("viewer", "v@example.com", "viewer-pass-1", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="use_console"))
    OperatorAccess.objects.create(name="read everywhere", user=staff, scopes=["*:read"])
    client.force_login(staff)
    url = reverse("admin:console") + "?op=database.query"
    response = client.post(url, {"op": "database.query", "p_sql": "SELECT 1"})
    data = json.loads(response.context["response"])
    assert data["success"] is False
    assert data["error"]["code"] == "forbidden"
    entry = AuditEntry.objects.get(operation="query")
    assert (entry.principal, entry.outcome, entry.error_code) == ("user:viewer", "error", "forbidden")


def test_it_keeps_non_staff_users_out(client, alice):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("tenant-user", "t@example.com", "tenant-pass-1")
    client.force_login(user)
    for name in PAGES + ["admin:monitoring_data"]:
        assert client.get(reverse(name)).status_code == 302
    assert (
        client.post(
            reverse("admin:console") + "?op=database.get_tenant_stats",
            {"op": "database.get_tenant_stats", "tenant": alice.slug},
        ).status_code
        == 302
    )
    assert not AuditEntry.objects.exists()


def test_it_names_a_bad_analyzer_in_the_system_check(settings):
    from dashboard.checks import check_analyzers

    assert check_analyzers(None) == []
    settings.IMPROVEMENT_ANALYZERS = [
        "dashboard.engine.analyzers.metrics.SlowOperations",
        "dashboard.nope.Missing",
    ]
    errors = check_analyzers(None)
    assert [e.id for e in errors] == ["dashboard.E001"]
    assert "dashboard.nope.Missing" in errors[0].msg
