"""The live pages in a real browser (Playwright driving Debian's chromium): a breaker opened by
another process shows on the open MCP dashboard and monitoring pages within 2 s without a reload;
with the stream process down the pages fall back to polling. Screenshots in test-output/live/."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connections

from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.production.conftest import ROOT, free_port, stop

from .conftest import start_stream, stream_env

SHOTS = ROOT / "test-output" / "live"
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def _release_live_server_connections(django_db_setup, django_db_blocker):
    """End the idle pooled connections the live server's thread left on the test database."""
    yield
    with django_db_blocker.unblock(), connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle'"
        )


@pytest.fixture
def page(live_server, _release_live_server_connections):
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure_browser.sh (apt-get install chromium)")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's loop runs in this thread
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    get_user_model().objects.create_superuser("ops", "ops@example.com", "ops-password-1")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        tab = context.new_page()
        tab.errors = []
        tab.on("pageerror", lambda exc: tab.errors.append(str(exc)))
        tab.goto(f"{live_server.url}/admin/login/?next=/admin/")
        tab.fill("#id_username", "ops")
        tab.fill("#id_password", "ops-password-1")
        tab.click("input[type=submit]")
        tab.wait_for_selector("nav.dashboard-links")
        yield tab
        context.close()
        browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def stream(live_server, tmp_path, settings):
    """The stream process on its own port; the pages (on the live server's port) open it with
    their session cookie, as a listed origin."""
    server = start_stream(tmp_path / "stream.log", LIVE_STREAM_ALLOWED_ORIGINS=live_server.url)
    # The live server answers on "localhost": the stream on the same host name, so that the
    # browser sends the session cookie along (cookies are per host, not per port).
    settings.LIVE_STREAM_URL = f"http://localhost:{server.port}/admin/live/events"
    try:
        yield server
    finally:
        stop(server.proc, timeout=15)


def breaker(service: str, action: str = "open") -> None:
    """Open or close a breaker from a separate process, as a web process or worker would."""
    subprocess.run(
        [sys.executable, "-m", "tests.live.trip_breaker", service, action],
        cwd=ROOT,
        env=stream_env(DJANGO_SETTINGS_MODULE="askpro.settings"),
        check=True,
        timeout=60,
    )


def test_it_shows_a_breaker_opened_by_another_process_within_2_s_without_a_reload(live_server, stream, page):
    page.goto(f"{live_server.url}/admin/dashboard/")
    page.wait_for_selector('#live-status[data-state="live"]', timeout=10_000)
    card = page.locator('article[data-service="calcom"] [data-testid="breaker"]')
    assert card.inner_text() == "closed"
    page.evaluate("window.__sameDocument = true")  # gone if the page were reloaded

    breaker("calcom")
    started = time.monotonic()
    page.wait_for_function(
        "document.querySelector('article[data-service=\"calcom\"] [data-testid=\"breaker\"]').textContent === 'open'",
        timeout=2000,
    )
    shown_after = time.monotonic() - started
    assert page.evaluate("window.__sameDocument") is True
    feed = page.locator('#live-feed li[data-type="breaker"][data-service="calcom"]')
    assert "closed → open" in feed.first.inner_text()
    page.screenshot(path=str(SHOTS / "1-dashboard-breaker-open.png"), full_page=True)

    # The monitoring page: the transition back to closed appears in its breaker list.
    page.goto(f"{live_server.url}/admin/monitoring/")
    page.wait_for_selector('#live-status[data-state="live"]', timeout=10_000)
    page.evaluate("window.__sameDocument = true")
    breaker("calcom", "close")
    page.wait_for_function(
        "document.getElementById('breakers').textContent.indexOf('calcom: open → closed') >= 0", timeout=2000
    )
    assert page.evaluate("window.__sameDocument") is True
    page.screenshot(path=str(SHOTS / "2-monitoring-breaker-closed.png"), full_page=True)
    assert page.errors == []
    print(f"breaker shown {shown_after * 1000:.0f} ms after the other process finished")


def test_it_falls_back_to_polling_when_the_stream_process_is_down(live_server, page, settings):
    settings.LIVE_STREAM_URL = f"http://127.0.0.1:{free_port()}/admin/live/events"  # nobody listens
    settings.DASHBOARD_POLL_SECONDS = 1
    page.goto(f"{live_server.url}/admin/dashboard/")
    page.wait_for_selector('#live-status[data-state="polling"]', timeout=10_000)
    page.evaluate("window.__sameDocument = true")
    breaker("calcom")
    page.wait_for_function(
        "document.querySelector('article[data-service=\"calcom\"] [data-testid=\"breaker\"]').textContent.trim() === 'open'",
        timeout=5000,
    )
    assert page.evaluate("window.__sameDocument") is True
    page.screenshot(path=str(SHOTS / "3-dashboard-polling.png"), full_page=True)
    assert page.errors == []
