"""The console and every admin page that calls operations act with the signed-in user's own
rights: OperatorAccess grants (scopes, optionally limited to tenants) and mcp_core.use_console."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from dashboard.models import ImprovementRun, Recommendation
from mcp_core.contracts import MCPRequest
from mcp_core.models import ApiKey, AuditEntry, OperatorAccess
from mcp_core.operators import OperatorRights, principal_for_user
from mcp_core.pipeline import call_operation, route
from mcp_servers.webhooks.models import WebhookEvent

from .people import make_staff

CONSOLE = "mcp_core.use_console"


def grant(name, *, user=None, group=None, scopes, tenants=()):
    row = OperatorAccess.objects.create(name=name, user=user, group=group, scopes=scopes)
    row.tenants.set(tenants)
    return row


def console_post(client, op: str, **fields):
    response = client.post(reverse("admin:console") + f"?op={op}", {"op": op, **fields})
    return response, (json.loads(response.context["response"]) if response.context.get("response") else None)


@pytest.fixture
def events(alice, bob):
    def make(key, tenant, status="failed"):
        return WebhookEvent.objects.create(
            provider="stripe",
            event_id=key,
            idempotency_key=key,
            type="invoice.paid",
            tenant=tenant,
            payload={"id": key},
            status=status,
        )

    return {"alice": make("evt_a", alice), "bob": make("evt_b", bob), "orphan": make("evt_o", None)}


def test_it_refuses_the_console_to_staff_without_the_permission(client, alice):
    user = make_staff("nobody")
    grant("would read", user=user, scopes=["*:read"])  # a grant alone does not open the console
    client.force_login(user)
    url = reverse("admin:console") + "?op=database.get_tenant_stats"
    assert client.get(url).status_code == 403
    response = client.post(url, {"op": "database.get_tenant_stats", "tenant": alice.slug})
    assert response.status_code == 403
    assert not AuditEntry.objects.exists()
    # The pages do not point to what the user cannot open.
    assert reverse("admin:console") not in client.get(reverse("admin:dashboard")).content.decode()
    assert reverse("admin:console") not in client.get(reverse("admin:index")).content.decode()


def test_it_gives_a_user_without_any_grant_no_scopes_at_all(client, alice):
    user = make_staff("empty", perms=[CONSOLE])
    client.force_login(user)
    page = client.get(reverse("admin:console")).content.decode()
    assert "no operator access has been granted to you" in page
    assert "database.get_tenant_stats" not in page  # nothing is listed
    page = client.get(reverse("admin:console") + "?op=database.get_tenant_stats").content.decode()
    assert f'value="{alice.slug}"' not in page  # no tenant to act for
    response, data = console_post(client, "database.get_tenant_stats", tenant=alice.slug)
    assert data is None and "tenant" in response.context["form"].errors
    response = call_operation(
        "database",
        "get_tenant_stats",
        principal=principal_for_user(user, tenant=alice.slug),
        tenant=alice.slug,
        transport="console",
    )
    assert (response.success, response.error["code"]) == (False, "forbidden")
    entry = AuditEntry.objects.get(operation="get_tenant_stats")
    assert (entry.principal, entry.user_id, entry.error_code) == ("user:empty", user.pk, "forbidden")


def test_it_runs_reads_and_refuses_writes_under_a_read_grant_and_audits_the_user(client, alice, events):
    user = make_staff("reader", perms=[CONSOLE])
    grant("read everywhere", user=user, scopes=["*:read"])
    client.force_login(user)
    page = client.get(reverse("admin:console")).content.decode()
    assert "read everywhere: *:read on every tenant" in page
    assert "database.get_tenant_stats" in page and "webhooks.replay_event" not in page

    _, data = console_post(client, "database.get_tenant_stats", tenant=alice.slug)
    assert data["success"] is True and data["metadata"]["tenant_id"] == alice.pk
    _, data = console_post(client, "webhooks.replay_event", p_id=str(events["alice"].pk))
    assert (data["success"], data["error"]["code"]) == (False, "forbidden")
    assert "lacks the scope 'webhooks:admin'" in data["error"]["message"]
    events["alice"].refresh_from_db()
    assert events["alice"].status == "failed"  # nothing was replayed

    rows = {
        e.operation: (e.transport, e.principal, e.user_id, e.outcome, e.tenant_id)
        for e in AuditEntry.objects.all()
    }
    assert rows == {
        "get_tenant_stats": ("console", "user:reader", user.pk, "success", alice.pk),
        "replay_event": ("console", "user:reader", user.pk, "error", None),
    }


def test_it_lets_a_tenant_bound_user_neither_choose_nor_post_another_tenant(client, alice, bob, events):
    user = make_staff("alice-support", perms=[CONSOLE])
    grant("alice support", user=user, scopes=["database:read", "webhooks:read"], tenants=[alice])
    client.force_login(user)

    page = client.get(reverse("admin:console") + "?op=database.get_tenant_stats").content.decode()
    assert f'value="{alice.slug}"' in page and f'value="{bob.slug}"' not in page
    response, data = console_post(client, "database.get_tenant_stats", tenant=bob.slug)
    assert data is None and "tenant" in response.context["form"].errors  # the form refuses it
    assert not AuditEntry.objects.exists()

    # Operations that are not tenant-scoped need a tenant too, and see only that tenant.
    page = client.get(reverse("admin:console") + "?op=webhooks.list_events").content.decode()
    assert 'name="tenant"' in page
    _, data = console_post(client, "webhooks.list_events", tenant=alice.slug)
    assert {e["id"] for e in data["data"]["events"]} == {events["alice"].pk}
    _, data = console_post(client, "webhooks.list_events", tenant=alice.slug, p_tenant=bob.slug)
    assert (data["success"], data["error"]["code"]) == (False, "forbidden")
    _, data = console_post(client, "webhooks.get_event", tenant=alice.slug, p_id=str(events["bob"].pk))
    assert data["error"]["code"] == "not_found"

    # The pipeline refuses another tenant even when the form is bypassed.
    for tenant in (bob.slug, str(bob.pk), "no-such-tenant"):
        response = call_operation(
            "database",
            "get_tenant_stats",
            principal=principal_for_user(user, tenant=tenant),
            tenant=tenant,
            transport="console",
        )
        assert response.error["code"] == "forbidden", tenant
        assert response.error["details"] == {"field": "tenant"}
    # Nor may a principal built for alice be pointed at bob.
    response = route(
        MCPRequest(
            service="database",
            operation="get_tenant_stats",
            params={},
            principal=principal_for_user(user, tenant=alice.slug),
            tenant=bob.slug,
        )
    )
    assert response.error["code"] == "forbidden"
    refused = AuditEntry.objects.filter(operation="get_tenant_stats", error_code="forbidden")
    assert refused.count() == 4
    assert set(refused.values_list("principal", "user_id")) == {("user:alice-support", user.pk)}


def test_it_gives_the_union_of_the_grants_that_cover_the_tenant(alice, bob, events):
    user = make_staff("mixed", perms=[CONSOLE])
    support = Group.objects.create(name="support")
    user.groups.add(support)
    grant("support reads", group=support, scopes=["*:read"])
    grant("alice webhooks", user=user, scopes=["webhooks:admin"], tenants=[alice])
    rights = OperatorRights(user)
    assert rights.tenant_ids is None  # the group grant covers every tenant
    assert rights.principal(alice.slug).has_scope("webhooks:admin")
    assert not rights.principal(bob.slug).has_scope("webhooks:admin")
    assert rights.principal(bob.slug).has_scope("database:read")
    assert not rights.principal(None).has_scope("webhooks:admin")

    def replay(event, tenant):
        return call_operation(
            "webhooks", "replay_event", {"id": event.pk}, principal=rights.principal(tenant), tenant=tenant
        )

    assert replay(events["alice"], alice.slug).success is True
    assert replay(events["bob"], bob.slug).error["code"] == "forbidden"
    # Acting for alice does not reach bob's events through an operation that is not tenant-scoped.
    assert replay(events["bob"], alice.slug).error["code"] == "not_found"


def test_it_lets_a_superuser_act_with_every_scope_on_every_tenant(client, alice, bob, superuser):
    principal = principal_for_user(superuser, tenant=bob.slug)
    assert principal.scopes == frozenset({"*"}) and principal.is_platform
    client.force_login(superuser)
    page = client.get(reverse("admin:console") + "?op=database.get_tenant_stats").content.decode()
    assert f'value="{alice.slug}"' in page and f'value="{bob.slug}"' in page
    _, data = console_post(client, "database.get_tenant_stats", tenant=bob.slug)
    assert data["success"] is True and data["metadata"]["tenant_id"] == bob.pk


def test_it_gives_inactive_or_non_staff_users_no_rights(alice):
    user = make_staff("gone", perms=[CONSOLE])
    grant("everything", user=user, scopes=["*"])
    assert principal_for_user(user, tenant=alice.slug).has_scope("database:read")
    user.is_active = False
    user.save()
    assert principal_for_user(user, tenant=alice.slug).scopes == frozenset()
    user.is_active, user.is_staff = True, False
    user.save()
    assert principal_for_user(user, tenant=alice.slug).scopes == frozenset()


def test_it_replays_webhooks_with_the_users_rights(
    client, alice, bob, events, django_capture_on_commit_callbacks
):
    changelist = reverse("admin:mcp_webhooks_webhookevent_changelist")
    viewer = make_staff("viewer", perms=["mcp_webhooks.view_webhookevent"])
    client.force_login(viewer)
    assert 'value="replay"' not in client.get(changelist).content.decode()

    operator = make_staff("alice-ops", perms=["mcp_webhooks.view_webhookevent", CONSOLE])
    grant("alice webhooks", user=operator, scopes=["webhooks:admin"], tenants=[alice])
    # Reading every tenant lets the operator see (and select) every event; replaying needs
    # webhooks:admin on the event's tenant, which they hold on alice only.
    grant("read everywhere", user=operator, scopes=["*:read"])
    client.force_login(operator)
    assert 'value="replay"' in client.get(changelist).content.decode()
    selected = [events[name].pk for name in ("alice", "bob", "orphan")]
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(changelist, {"action": "replay", "_selected_action": selected}, follow=True)
    assert "Replay: 2 forbidden, 1 queued" in response.content.decode()
    statuses = {e.event_id: e.status for e in WebhookEvent.objects.all()}
    assert statuses == {"evt_a": "received", "evt_b": "failed", "evt_o": "failed"}
    rows = set(
        AuditEntry.objects.filter(operation="replay_event").values_list("principal", "user_id", "outcome")
    )
    assert rows == {("user:alice-ops", operator.pk, "success"), ("user:alice-ops", operator.pk, "error")}

    # Someone bound to alice neither sees nor replays the others, whatever ids they post.
    bound = make_staff("alice-only", perms=["mcp_webhooks.view_webhookevent", CONSOLE])
    grant("alice only", user=bound, scopes=["webhooks:admin"], tenants=[alice])
    client.force_login(bound)
    listed = client.get(changelist).context["cl"].queryset
    assert set(listed.values_list("pk", flat=True)) == {events["alice"].pk}
    WebhookEvent.objects.update(status="failed")
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(changelist, {"action": "replay", "_selected_action": selected}, follow=True)
    assert "Replay: 1 queued" in response.content.decode()
    statuses = {e.event_id: e.status for e in WebhookEvent.objects.all()}
    assert statuses == {"evt_a": "received", "evt_b": "failed", "evt_o": "failed"}


def test_it_requires_each_dashboard_actions_permission(client, db, settings):
    settings.IMPROVEMENT_ANALYZERS = []
    rec = Recommendation.objects.create(
        analyzer="slow_operations", fingerprint="x", severity="low", title="Slow", suggested_action="-"
    )
    action = reverse("admin:improvement_action", args=[rec.pk, "accept"])
    client.force_login(make_staff("looker"))
    dashboard = client.get(reverse("admin:dashboard")).content.decode()
    improvements = client.get(reverse("admin:improvements")).content.decode()
    assert "Run checks now" not in dashboard and "Run analysis now" not in improvements
    assert 'data-action="accept"' not in improvements
    assert client.post(reverse("admin:dashboard")).status_code == 403
    assert client.post(reverse("admin:improvements")).status_code == 403
    assert client.post(action).status_code == 403
    assert not ImprovementRun.objects.exists()
    assert Recommendation.objects.get(pk=rec.pk).status == "open"

    doer = make_staff(
        "doer",
        perms=[
            "dashboard.run_health_checks",
            "dashboard.run_improvements",
            "dashboard.change_recommendation",
        ],
    )
    # A run and a platform recommendation concern every tenant: a grant on every tenant, too
    # (someone bound to some tenants is refused: dashboard/tests/test_tenant_bound_pages.py).
    OperatorAccess.objects.create(name="platform ops", user=doer, scopes=["*:read"])
    client.force_login(doer)
    assert "Run checks now" in client.get(reverse("admin:dashboard")).content.decode()
    assert client.post(reverse("admin:improvements")).status_code == 302
    assert ImprovementRun.objects.filter(trigger="page").exists()
    assert client.post(action).status_code == 302
    assert Recommendation.objects.get(pk=rec.pk).status == "accepted"


def test_it_manages_grants_in_the_admin_with_validated_scopes(client, superuser, alice):
    client.force_login(superuser)
    user = make_staff("new-hire")
    add = reverse("admin:mcp_core_operatoraccess_add")
    response = client.post(add, {"name": "bad", "user": user.pk, "scopes_text": "database:rule"})
    assert "must look like" in response.content.decode()
    response = client.post(add, {"name": "nobody", "scopes_text": "database:read"})
    assert "choose exactly one of the two" in response.content.decode()
    response = client.post(
        add,
        {"name": "ok", "user": user.pk, "scopes_text": "database:read webhooks:read", "tenants": [alice.pk]},
    )
    assert response.status_code == 302
    row = OperatorAccess.objects.get(name="ok")
    assert (row.scopes, list(row.tenants.all())) == (["database:read", "webhooks:read"], [alice])
    listing = client.get(reverse("admin:mcp_core_operatoraccess_changelist")).content.decode()
    assert "database:read webhooks:read" in listing and alice.slug in listing


def test_it_lets_nobody_but_a_superuser_hand_out_scopes_they_do_not_hold(client, alice, bob):
    perms = [
        "mcp_core.add_apikey",
        "mcp_core.view_apikey",
        "mcp_core.add_operatoraccess",
        "mcp_core.view_operatoraccess",
    ]
    manager = make_staff("manager", perms=perms)
    grant("alice reads", user=manager, scopes=["database:read", "webhooks:read"], tenants=[alice])
    client.force_login(manager)
    add_key = reverse("admin:mcp_core_apikey_add")

    response = client.post(add_key, {"name": "k1", "tenant": alice.pk, "scopes_text": "database:write"})
    assert "you do not hold database:write on tenant alice-salon" in response.content.decode()
    response = client.post(add_key, {"name": "k2", "tenant": "", "scopes_text": "database:read"})
    assert "you do not hold database:read on every tenant" in response.content.decode()
    response = client.post(add_key, {"name": "k3", "tenant": bob.pk, "scopes_text": "database:read"})
    # bob is not even offered to someone bound to alice (mcp_core.admin_scoping).
    assert "tenant" in response.context["adminform"].form.errors
    assert f'<option value="{bob.pk}"' not in response.content.decode()
    response = client.post(add_key, {"name": "k4", "tenant": alice.pk, "scopes_text": "database:read"})
    assert response.status_code == 302
    assert list(ApiKey.objects.values_list("name", "scopes")) == [("k4", ["database:read"])]

    add_grant = reverse("admin:mcp_core_operatoraccess_add")
    helper = make_staff("helper")
    response = client.post(add_grant, {"name": "all", "user": helper.pk, "scopes_text": "*"})
    assert "you do not hold * on every tenant" in response.content.decode()
    response = client.post(
        add_grant, {"name": "alice", "user": helper.pk, "scopes_text": "webhooks:read", "tenants": [alice.pk]}
    )
    assert response.status_code == 302
    assert set(OperatorAccess.objects.filter(user=helper).values_list("name", flat=True)) == {"alice"}
