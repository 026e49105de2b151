"""The marketplace in a real browser (Playwright driving Debian's chromium): an operator searches
the sandbox MCP registry, installs an entry, sees the new registration, completes it, fetches and
approves its tools, calls one from the console, and finds the call in the audit log. The remote
MCP server is the sandbox registry's own (the SDK's server on 127.0.0.1)."""

from __future__ import annotations

import pytest
from django.test import override_settings

from askpro.models import Company
from dashboard.tests import test_browser as dashboard_browser
from mcp_core.models import AuditEntry
from mcp_servers.federation.models import RemoteServer, RemoteTool
from mcp_servers.federation.sandbox import RegistrySandbox
from tests.admin.people import PASSWORD, make_staff

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
SHOTS = dashboard_browser.SHOTS
# The dashboard's browser fixtures, shared (pytest finds fixtures by module attribute name).
browser_page = dashboard_browser.browser_page
_release_live_server_connections = dashboard_browser._release_live_server_connections


@pytest.fixture
def registry():
    with (
        RegistrySandbox() as sandbox,
        override_settings(FEDERATION_REGISTRY_URL=sandbox.url, FEDERATION_ALLOWED_NETWORKS=["127.0.0.0/8"]),
    ):
        yield sandbox


def test_it_installs_approves_and_calls_a_marketplace_server_in_the_browser(
    live_server, browser_page, registry
):
    page, errors = browser_page
    Company.objects.create(name="Browser Salon", slug="browser-salon")
    make_staff("operator", superuser=True)
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")

    # Search: only the matching entry is listed.
    page.goto(f"{live_server.url}/admin/mcp_federation/remoteserver/")
    page.click("text=Browse the MCP marketplace")
    page.fill("#q", "postcode")
    page.click("#marketplace-search input[type=submit]")
    rows = page.locator("#marketplace tbody tr")
    assert rows.count() == 1 and "Postcodes" in rows.first.inner_text()
    assert registry.remotes.urls["io.example/postcodes"] in rows.first.inner_text()
    page.screenshot(path=str(SHOTS.parent / "federation-marketplace.png"), full_page=True)

    # Install: a disabled registration, shown with its next steps.
    rows.first.locator("input[type=submit][value=Install]").click()
    page.wait_for_selector(".messagelist")
    assert "installed as fed_postcodes, disabled" in page.locator(".messagelist").text_content()
    server = RemoteServer.objects.get(registry_name="io.example/postcodes")
    assert (server.slug, server.enabled, server.source) == ("postcodes", False, "marketplace")
    page.check("#id_enabled")
    page.check("#id_all_tenants")
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist")

    # The registration in the list; fetch its tool definitions.
    page.goto(f"{live_server.url}/admin/mcp_federation/remoteserver/")
    assert "fed_postcodes" in page.locator("#result_list").inner_text()
    page.locator("#result_list tr", has_text="fed_postcodes").locator("input.action-select").check()
    page.select_option("select[name=action]", "sync_now")
    page.click("button[name=index]")
    page.wait_for_selector(".messagelist")
    tool = RemoteTool.objects.get(server=server, name="lookup")
    assert tool.status == "pending"

    # Approve: the diff first, then the confirmation pins it.
    page.goto(f"{live_server.url}/admin/mcp_federation/remotetool/")
    page.locator("#result_list tr", has_text="lookup").locator("input.action-select").check()
    page.select_option("select[name=action]", "approve")
    page.click("button[name=index]")
    diff = page.locator('pre.fed-diff[data-tool="lookup"]').inner_text()
    assert "nothing approved" in diff and '"postcode"' in diff
    page.click("input[type=submit][value^=Approve]")
    page.wait_for_selector(".messagelist")
    assert "fed_postcodes: lookup v1 approved" in page.locator(".messagelist").text_content().lower()

    # Call it from the console, then find the call in the audit log.
    page.goto(f"{live_server.url}/admin/console/")
    page.select_option("#op-select", "fed_postcodes.lookup")
    page.click("button >> text=Open")
    page.select_option("#id_tenant", "browser-salon")
    page.fill("#id_p_postcode", "50667")
    page.click("#console-form button[type=submit]")
    page.wait_for_selector('[data-testid="response"]')
    assert page.locator('[data-testid="response-status"]').inner_text() == "success"
    assert "Nordrhein-Westfalen" in page.locator('[data-testid="response"]').inner_text()
    entry = AuditEntry.objects.get(service="fed_postcodes", operation="lookup")
    assert entry.tenant_id == Company.objects.get(slug="browser-salon").pk
    page.goto(f"{live_server.url}/admin/mcp_core/auditentry/?service=fed_postcodes")
    row = page.locator("#result_list tbody tr")
    assert row.count() == 1
    assert row.first.inner_text().split("\t")[1:7] == [
        "fed_postcodes",
        "lookup",
        "Success",
        "-",
        "user:operator",
        "Browser Salon",
    ]
    page.screenshot(path=str(SHOTS.parent / "federation-audit.png"), full_page=True)
    assert errors == []
