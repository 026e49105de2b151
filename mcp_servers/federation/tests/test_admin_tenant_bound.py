"""A federated server is a platform row: an operator bound to some tenants may at most view it,
whatever their model permissions, and sees only their own tenants in its tenant list. Nothing
they post adds, changes, deletes, syncs, approves, rejects or installs one. Superusers and
operators with a grant on every tenant keep the full admin."""

from __future__ import annotations

import html

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from mcp_core.models import OperatorAccess
from mcp_servers.federation.models import RemoteServer, RemoteTool
from tests.admin.people import make_staff

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_operator(alice):
    """Every permission there is (approve included), not superuser, a grant limited to alice."""
    user = make_staff("alice-fed", perms=Permission.objects.all())
    grant = OperatorAccess.objects.create(name="alice ops", user=user, scopes=["*"])
    grant.tenants.add(alice)
    return user


@pytest.fixture
def everywhere_operator(db):
    user = make_staff("fed-everywhere", perms=Permission.objects.all())
    OperatorAccess.objects.create(name="everywhere", user=user, scopes=["*"])
    return user


@pytest.fixture
def server(alice, bob):
    server = RemoteServer.objects.create(
        slug="weather", title="Weather", url="http://127.0.0.1:9/mcp", bearer_token="fed-token-9c1"
    )
    server.tenants.set([alice, bob])
    return server


@pytest.fixture
def pending_tool(server):
    return RemoteTool.objects.create(
        server=server,
        name="forecast",
        operation="forecast",
        digest="b" * 64,
        definition={"name": "forecast", "description": "A forecast.", "inputSchema": {"type": "object"}},
    )


def _change_form(server, tenants) -> dict:
    return {
        "slug": server.slug,
        "title": "Renamed",
        "description": "",
        "url": server.url,
        "era": "legacy",
        "bearer_token": "",
        "timeout_seconds": "",
        "enabled": "on",
        "tenants": [t.pk for t in tenants],
        "tools-TOTAL_FORMS": "0",
        "tools-INITIAL_FORMS": "0",
        "tools-MIN_NUM_FORMS": "0",
        "tools-MAX_NUM_FORMS": "1000",
    }


def test_it_shows_a_tenant_bound_operator_only_their_tenants_of_a_server(
    client, alice, bob, alice_operator, server
):
    client.force_login(alice_operator)
    response = client.get(reverse("admin:mcp_federation_remoteserver_change", args=[server.pk]))
    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    assert "Alice's Salon" in page
    assert "Bob" not in page and bob.slug not in page
    assert 'name="tenants"' not in page and 'name="title"' not in page  # read-only
    assert not response.context["has_change_permission"]
    # Nor can the change list be filtered by another tenant to learn which servers it uses.
    probe = client.get(reverse("admin:mcp_federation_remoteserver_changelist") + f"?tenants={bob.pk}")
    assert probe.status_code == 400
    # The change list and the tools are there to read.
    assert client.get(reverse("admin:mcp_federation_remoteserver_changelist")).status_code == 200
    assert client.get(reverse("admin:mcp_federation_remotetool_changelist")).status_code == 200


def test_it_refuses_a_tenant_bound_operator_every_change_to_a_server(
    client, alice, bob, alice_operator, server, pending_tool
):
    client.force_login(alice_operator)
    change = reverse("admin:mcp_federation_remoteserver_change", args=[server.pk])
    # Taking bob off the list (or adding a tenant) is refused, not saved.
    assert client.post(change, _change_form(server, [alice])).status_code == 403
    server.refresh_from_db()
    assert server.title == "Weather" and set(server.tenants.all()) == {alice, bob}
    assert client.get(reverse("admin:mcp_federation_remoteserver_add")).status_code == 403
    add = client.post(
        reverse("admin:mcp_federation_remoteserver_add"), {**_change_form(server, [alice]), "slug": "mine"}
    )
    assert add.status_code == 403 and not RemoteServer.objects.filter(slug="mine").exists()
    delete = reverse("admin:mcp_federation_remoteserver_delete", args=[server.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert RemoteServer.objects.filter(pk=server.pk).exists()

    # No action: sync, approve (with or without the diff page), reject.
    changelist = reverse("admin:mcp_federation_remoteserver_changelist")
    action_form = client.get(changelist).context["action_form"]
    assert action_form is None or "sync_now" not in dict(action_form.fields["action"].choices)
    client.post(changelist, {"action": "sync_now", "_selected_action": [server.pk]})
    server.refresh_from_db()
    assert server.last_sync_at is None
    tools = reverse("admin:mcp_federation_remotetool_changelist")
    for action in ("approve", "reject"):
        response = client.post(
            tools, {"action": action, "_selected_action": [pending_tool.pk], "confirm": "yes"}
        )
        pending_tool.refresh_from_db()
        assert pending_tool.status == "pending", action
    confirm = client.post(tools, {"action": "approve", "_selected_action": [pending_tool.pk]})
    assert 'name="confirm"' not in confirm.content.decode()
    tool_change = reverse("admin:mcp_federation_remotetool_change", args=[pending_tool.pk])
    assert client.post(tool_change, {}).status_code == 403

    # Nor may they install from the marketplace (refused before the registry is asked).
    market = reverse("admin:mcp_federation_marketplace")
    response = client.post(market, {"name": "io.example/holidays", "version": "2.0.0"})
    assert response.status_code == 403
    assert RemoteServer.objects.count() == 1


@pytest.mark.parametrize("who", ["superuser", "everywhere"])
def test_it_keeps_the_full_federation_admin_for_every_tenant_operators(
    client, alice, bob, server, pending_tool, everywhere_operator, who
):
    person = make_staff("fed-root", superuser=True) if who == "superuser" else everywhere_operator
    client.force_login(person)
    change = reverse("admin:mcp_federation_remoteserver_change", args=[server.pk])
    page = html.unescape(client.get(change).content.decode())
    assert 'name="tenants"' in page and "Bob's Practice" in page
    listed = client.get(reverse("admin:mcp_federation_remoteserver_changelist") + f"?tenants={bob.pk}")
    assert listed.status_code == 200 and listed.context["cl"].result_count == 1
    response = client.post(change, _change_form(server, [alice]))
    assert response.status_code == 302, response.content.decode()[:2000]
    server.refresh_from_db()
    assert server.title == "Renamed" and set(server.tenants.all()) == {alice}
    tools = reverse("admin:mcp_federation_remotetool_changelist")
    client.post(tools, {"action": "approve", "_selected_action": [pending_tool.pk], "confirm": "yes"})
    pending_tool.refresh_from_db()
    assert pending_tool.status == "approved"
