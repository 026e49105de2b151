"""Every dashboard page in a real browser: Playwright driving Debian's chromium against a live
server. Screenshots go to test-output/dashboard/."""

from __future__ import annotations

import os
import shutil
from datetime import timedelta as td
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from django.utils import timezone

from dashboard.engine import ImprovementEngine
from dashboard.engine.analyzers.metrics import SlowOperations
from dashboard.models import HealthCheckResult, Recommendation
from mcp_core.models import AuditEntry
from tests.browser import CHROMIUM, CHROMIUM_ARGS

from .factories import audit, record_calls

SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "dashboard"

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser_page(_release_live_server_connections):
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure_browser.sh (apt-get install chromium)")
    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes
    # between browser steps are still plain synchronous calls.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        # Failed loads are reported as responses (with their URL) rather than console lines.
        page.on(
            "console",
            lambda msg: (
                errors.append(msg.text)
                if msg.type == "error" and not msg.text.startswith("Failed to load resource")
                else None
            ),
        )
        page.on(
            "response",
            lambda r: (
                errors.append(f"{r.status} {r.url}")
                if r.status >= 400 and not r.url.endswith("/favicon.ico")
                else None
            ),
        )
        yield page, errors
        context.close()
        browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture(scope="session")
def _release_live_server_connections(django_db_setup, django_db_blocker):
    """At the end of the session, end the idle pooled connections the live server's thread left
    on this run's own test database, which would otherwise keep it from being dropped."""
    yield
    with django_db_blocker.unblock(), connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle'"
        )


def _data(alice, bob):
    now = timezone.now()
    for minute in range(5):
        record_calls(
            service="database",
            operation="search",
            minute=now - td(minutes=minute),
            durations_ms=[15] * 6,
            service_failures=1,
            caller_errors=2,
            tenant_id=alice.pk,
        )
        record_calls(
            service="database",
            operation="get_call_stats",
            minute=now - td(minutes=minute),
            durations_ms=[1800] * 5,
            tenant_id=bob.pk,
        )
    # A service without credentials: its answers are not_configured, not failures.
    record_calls(
        service="sentry", operation="list_issues", minute=now, durations_ms=[2] * 4, not_configured=4
    )
    for _ in range(3):
        audit(service="database", operation="search", error_code="rate_limited", tenant_id=bob.pk)
    audit(
        service="database",
        operation="search",
        error_code="upstream_error",
        message="connection reset",
        tenant_id=alice.pk,
    )
    HealthCheckResult.objects.create(service="database", status="healthy", latency_ms=4.5)


def _shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_it_works_on_every_dashboard_page_in_a_real_browser(live_server, browser_page, alice, bob):
    page, errors = browser_page
    get_user_model().objects.create_superuser("ops", "ops@example.com", "ops-password-1")
    _data(alice, bob)
    # Two slow operations give two recommendations to accept and dismiss.
    record_calls(
        service="database",
        operation="get_schema",
        minute=timezone.now(),
        durations_ms=[3000] * 25,
        tenant_id=alice.pk,
    )
    ImprovementEngine([SlowOperations()]).run(trigger="test")
    assert Recommendation.objects.count() == 2

    # Sign in.
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "ops-password-1")
    page.click("input[type=submit]")
    page.wait_for_selector("nav.dashboard-links")
    assert page.locator("nav.dashboard-links a").count() == 4
    _shot(page, "0-index")

    # MCP dashboard: the card's figures are the ones created above.
    page.click("nav.dashboard-links >> text=MCP dashboard")
    card = page.locator('article[data-service="database"]')
    assert card.locator('[data-testid="status"]').inner_text() == "healthy"
    assert card.locator('[data-testid="calls"]').inner_text() == "80"  # 5 x 6 + 5 x 5 + 25
    assert card.locator('[data-testid="failure-rate"]').inner_text() == "6.2 % (5 of 80)"
    assert card.locator('[data-testid="caller-errors"]').inner_text() == "12.5 % (10 of 80)"
    assert "connection reset" in card.locator('[data-testid="last-failure"]').inner_text()
    sentry = page.locator('article[data-service="sentry"]')
    assert sentry.locator('[data-testid="failure-rate"]').inner_text() == "0.0 % (0 of 4)"
    assert sentry.locator('[data-testid="not-configured"]').inner_text().startswith("100.0 % (4 of 4)")
    assert sentry.locator('[data-testid="last-failure"]').inner_text() == "none"
    legend = page.locator('[data-testid="outcome-legend"]')
    assert "circuit_open" in legend.locator('dd[data-class="service_failures"]').inner_text()
    assert "forbidden" in legend.locator('dd[data-class="caller_errors"]').inner_text()
    _shot(page, "1-dashboard")
    page.click("text=Run checks now")
    page.wait_for_selector(".messagelist")
    assert "Checked" in page.locator(".messagelist").inner_text()
    assert page.locator('[data-testid="aggregate"]').inner_text() in {"healthy", "degraded", "unhealthy"}

    # System monitoring: totals, the service table and the refusals, drawn by the page's script.
    page.goto(f"{live_server.url}/admin/monitoring/")
    page.wait_for_selector('#services-table tr[data-service="database"]')
    assert page.locator("#total-calls").inner_text() == "84"
    totals = [
        page.locator(f"#total-{name}").inner_text()
        for name in ("failures", "caller-errors", "not-configured")
    ]
    assert totals == ["5", "10", "4"]
    row = page.locator('#services-table tr[data-service="database"] td')
    assert [row.nth(i).inner_text() for i in range(6)] == ["database", "80", "5", "6.2 %", "10", "0"]
    row = page.locator('#services-table tr[data-service="sentry"] td')
    assert [row.nth(i).inner_text() for i in range(6)] == ["sentry", "4", "0", "0.0 %", "0", "4"]
    refusals = page.locator(f'#refusals-table tr[data-tenant="{bob.pk}"] td')
    assert refusals.nth(2).inner_text() == "3"
    assert page.locator("#chart-calls svg path.line").count() == 1
    assert page.locator("#chart-latency svg rect").count() >= 3
    # Live update: new calls appear after a poll, without reloading the page.
    record_calls(service="database", operation="search", minute=timezone.now(), durations_ms=[10] * 20)
    page.evaluate("window.DashMonitoring.poll()")
    page.wait_for_function("document.getElementById('total-calls').textContent === '104'")
    _shot(page, "2-monitoring")
    page.click("a.button >> text=7d")
    page.wait_for_selector('#services-table tr[data-service="database"]')
    assert page.locator("#total-calls").inner_text() == "104"
    _shot(page, "2-monitoring-7d")

    # System improvements: accept one recommendation, dismiss the other.
    page.goto(f"{live_server.url}/admin/improvements/")
    recs = page.locator("article.rec")
    assert recs.count() == 2
    _shot(page, "3-improvements")
    first = recs.nth(0)
    first_id = first.get_attribute("data-rec")
    first.locator('button[data-action="accept"]').click()
    page.wait_for_selector(".messagelist")
    assert (
        page.locator(f'article[data-rec="{first_id}"] [data-testid="rec-status"]').inner_text() == "accepted"
    )
    other = page.locator(f'article.rec:not([data-rec="{first_id}"])')
    other_id = other.get_attribute("data-rec")
    other.locator('button[data-action="dismiss"]').click()
    page.wait_for_selector(".messagelist")
    assert page.locator(f'article[data-rec="{other_id}"]').count() == 0  # hidden from "active"
    statuses = dict(Recommendation.objects.values_list("pk", "status"))
    assert statuses == {int(first_id): "accepted", int(other_id): "dismissed"}
    page.click("text=Run analysis now")
    page.wait_for_selector("text=Analysis finished")
    assert page.locator("#runs tbody tr").count() == 2
    _shot(page, "3-improvements-after")

    # Console: run an operation as the signed-in operator.
    page.goto(f"{live_server.url}/admin/console/")
    page.select_option("#op-select", "database.get_call_stats")
    page.click("button >> text=Open")
    page.select_option("#id_tenant", alice.slug)
    page.fill("#id_p_days", "3")
    page.click("#console-form button[type=submit]")
    page.wait_for_selector('[data-testid="response"]')
    assert page.locator('[data-testid="response-status"]').inner_text() == "success"
    assert f'"tenant_id": {alice.pk}' in page.locator('[data-testid="response"]').inner_text()
    _shot(page, "4-console")
    entry = AuditEntry.objects.get(operation="get_call_stats", transport="console")
    assert (entry.principal, entry.params) == ("user:ops", {"days": 3})

    assert errors == []
