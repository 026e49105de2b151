"""Discovery, health, OpenAPI and the admin's read-only audit log."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import reverse

from mcp_core.models import AuditEntry, MetricRollup
from mcp_core.registry import get_registry


def get(client, url, key=None, **extra):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    return client.get(url, **headers, **extra)


def tool_names(services) -> set[str]:
    return {op["tool_name"] for service in services for op in service["operations"]}


def test_it_lists_only_the_operations_a_key_may_use(client, alice, key_factory, platform_key):
    registry = get_registry()
    reader = key_factory(tenant=alice, scopes=["database:read"])
    body = get(client, "/api/v1/mcp/services", reader).json()
    names = tool_names(body["services"])
    expected = {
        op.tool_name for op in registry.operations() if op.service == "database" and op.scope_level == "read"
    }
    assert names == expected
    assert "database_query" not in names
    op = next(
        o for s in body["services"] for o in s["operations"] if o["tool_name"] == "database_get_call_stats"
    )
    assert op["params_schema"]["type"] == "object" and op["params_schema"]["additionalProperties"] is False
    assert op["result_schema"]["type"] == "object"
    assert op["annotations"]["read_only"] is True and op["scope"] == "database:read"
    # A tenant key never sees platform-only operations, even with every scope.
    tenant_all = key_factory(tenant=alice, scopes=["*"])
    assert not {o.tool_name for o in registry.operations() if o.platform_only} & tool_names(
        get(client, "/api/v1/mcp/services", tenant_all).json()["services"]
    )
    # The platform key with every scope sees everything.
    assert tool_names(get(client, "/api/v1/mcp/services", platform_key).json()["services"]) == {
        o.tool_name for o in registry.operations()
    }


def test_it_refuses_discovery_and_health_without_a_key(client, db):
    for url in ("/api/v1/mcp/services", "/api/v1/mcp/health"):
        response = get(client, url)
        assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")
        assert response.json()["error"]["code"] == "unauthorized"


def test_it_reports_health(client, alice_key):
    response = get(client, "/api/v1/mcp/health", alice_key)
    assert response.status_code == 200
    body = response.json()
    assert body["services"]["database"]["status"] == "healthy"
    assert body["status"] in {"healthy", "degraded", "unhealthy"}
    assert set(body["services"]) == set(get_registry().servers)
    for bad in ("abc", "0", "31"):
        response = get(client, f"/api/v1/mcp/health?timeout={bad}", alice_key)
        assert response.status_code == 400 and response.json()["error"]["details"]["field"] == "timeout"


def test_it_serves_openapi_and_swagger(client, db):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    text = response.content.decode()
    assert "openapi: 3" in text and "/api/v1/mcp/call" in text and "/api/v1/mcp/services" in text
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert "/api/v1/mcp/health" in response.json()["paths"]
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()


@pytest.fixture
def operator(client, db):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return user


def test_it_keeps_the_audit_log_read_only_in_the_admin(client, operator, alice, alice_key):
    client.post(
        "/api/v1/mcp/call",
        data={"service": "database", "operation": "get_tenant_stats"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {alice_key}",
    )
    entry = AuditEntry.objects.get()
    model_admin = admin.site._registry[AuditEntry]
    request = client.get("/").wsgi_request
    request.user = operator
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, entry)
    assert not model_admin.has_delete_permission(request, entry)
    changelist = client.get(
        reverse("admin:mcp_core_auditentry_changelist") + "?outcome=success&service=database&q=tenant_stats"
    )
    assert changelist.status_code == 200 and b"get_tenant_stats" in changelist.content
    assert b"delete_selected" not in changelist.content
    assert client.get(reverse("admin:mcp_core_auditentry_add")).status_code == 403
    change_url = reverse("admin:mcp_core_auditentry_change", args=[entry.pk])
    assert client.get(change_url).status_code == 200  # view only
    assert client.post(change_url, {"operation": "tampered"}).status_code == 403
    delete_url = reverse("admin:mcp_core_auditentry_delete", args=[entry.pk])
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    client.post(
        reverse("admin:mcp_core_auditentry_changelist"),
        {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"},
    )
    entry.refresh_from_db()
    assert entry.operation == "get_tenant_stats"
    assert AuditEntry.objects.count() == 1
    assert MetricRollup.objects.count() >= 1
