"""Secrets and operator rights in a real browser (Playwright driving Debian's chromium).

Here rather than in tests/admin: the live server is session-wide, and it must start after
tests/core/test_recorder.py cuts every pooled database connection (an outage drill); a dead
connection the live server had pooled would otherwise be handed to a later test."""

from __future__ import annotations

import pytest

from askpro.crypto import secret_fingerprint
from askpro.models import Company
from mcp_core.models import AuditEntry, OperatorAccess
from tests.admin.people import PASSWORD, make_staff

from . import test_browser as dashboard_browser

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
SHOTS = dashboard_browser.SHOTS
# The dashboard's browser fixtures, shared (pytest finds fixtures by module attribute name).
browser_page = dashboard_browser.browser_page
_release_live_server_connections = dashboard_browser._release_live_server_connections


def _login(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")


def test_it_shows_a_viewer_only_the_state_of_secrets_and_lets_a_writer_replace_and_clear_them(
    live_server, browser_page, alice
):
    page, errors = browser_page
    alice.calcom_api_key = "cal_live_browser_secret_1"
    alice.stripe_webhook_secret = "whsec_browser_secret_2"
    alice.save()
    viewer = make_staff("viewer", perms=["askpro.view_company"])
    writer = make_staff("writer", perms=["askpro.view_company", "askpro.change_company"])
    # Both act for alice (a staff user without a grant sees no tenant's rows).
    for user in (viewer, writer):
        OperatorAccess.objects.create(name="alice", user=user, scopes=["*:read"]).tenants.add(alice)
    change_url = f"{live_server.url}/admin/askpro/company/{alice.pk}/change/"

    _login(page, live_server, "viewer")
    page.goto(change_url)
    html = page.content()
    assert "browser_secret" not in html
    assert (
        secret_fingerprint("cal_live_browser_secret_1")
        in page.locator(".field-calcom_api_key_status").inner_text()
    )
    assert page.locator("input[type=password]").count() == 0
    page.screenshot(path=str(SHOTS.parent / "admin-company-viewer.png"), full_page=True)

    page.context.clear_cookies()
    _login(page, live_server, "writer")
    page.goto(change_url)
    assert "browser_secret" not in page.content()
    assert page.locator("#id_calcom_api_key").input_value() == ""
    page.screenshot(path=str(SHOTS.parent / "admin-company-writer.png"), full_page=True)
    page.fill("#id_retell_api_key", "retell_browser_secret_3")
    page.check("#id_stripe_webhook_secret_clear")
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist")
    assert "browser_secret" not in page.content()
    stored = Company.objects.get(pk=alice.pk)
    assert (stored.calcom_api_key, stored.retell_api_key, stored.stripe_webhook_secret) == (
        "cal_live_browser_secret_1",
        "retell_browser_secret_3",
        "",
    )
    status = page.locator("#id_retell_api_key_helptext").inner_text()
    assert secret_fingerprint("retell_browser_secret_3") in status and status.startswith("Set · last changed")
    assert errors == []


def test_it_lets_a_tenant_bound_operator_run_the_console_for_their_tenant_only(
    live_server, browser_page, alice, bob
):
    page, errors = browser_page
    user = make_staff("alice-support", perms=["mcp_core.use_console"])
    grant = OperatorAccess.objects.create(name="alice support", user=user, scopes=["database:read"])
    grant.tenants.add(alice)
    _login(page, live_server, "alice-support")
    page.goto(f"{live_server.url}/admin/console/")
    assert (
        "alice support: database:read on alice-salon" in page.locator('[data-testid="rights"]').inner_text()
    )
    page.select_option("#op-select", "database.get_call_stats")
    page.click("button >> text=Open")
    offered = page.locator("#id_tenant option").evaluate_all("els => els.map(e => e.value)")
    assert offered == ["", alice.slug]
    page.select_option("#id_tenant", alice.slug)
    page.click("#console-form button[type=submit]")
    page.wait_for_selector('[data-testid="response"]')
    assert page.locator('[data-testid="response-status"]').inner_text() == "success"
    page.screenshot(path=str(SHOTS.parent / "admin-console-tenant-bound.png"), full_page=True)
    entry = AuditEntry.objects.get(operation="get_call_stats")
    assert (entry.principal, entry.user_id, entry.tenant_id) == ("user:alice-support", user.pk, alice.pk)
    assert errors == []
