"""Remote MCP servers as governed services: their approved tools are operations in the
registry, listed by scope, called through route() with tenant binding and an audit row, in
both protocol eras, against real SDK servers on 127.0.0.1."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client, override_settings

from mcp_core.discovery import operations_for
from mcp_core.health import HealthStatus
from mcp_core.models import AuditEntry
from mcp_core.pipeline import call_operation
from mcp_core.registry import VERSION_KEY, bump_registry_version, get_registry
from mcp_servers.federation import services
from mcp_servers.federation.models import RemoteServer, RemoteTool
from tests.mcp.helpers import LEGACY, MODERN, call_tool, list_tools

from .conftest import Remote, platform, register, tenant_key

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("era", ["legacy", "2026-07-28"])
def test_it_calls_a_remote_tool_through_the_pipeline_in_both_eras(remote, tenants, era):
    register(remote.url, era=era)
    response = call_operation("fed_demo", "echo", {"text": "hallo"}, principal=platform(), tenant="fed-a")
    assert response.success, response.error
    assert response.data == {"text": "hallo"}
    entry = AuditEntry.objects.get(request_id=response.metadata["request_id"])
    assert (entry.service, entry.operation, entry.tenant_id) == ("fed_demo", "echo", tenants[0].pk)
    assert entry.error_code in (None, "")


def test_it_works_against_a_stateful_server_answering_over_sse(tenants):
    stateful = Remote("normal", FED_REMOTE_STATEFUL="1")
    try:
        register(stateful.url, slug="sse")
        response = call_operation("fed_sse", "add", {"a": 2, "b": 40}, principal=platform(), tenant="fed-a")
    finally:
        stateful.stop()
    assert response.success, response.error
    assert response.data == {"total": 42}


def test_it_derives_operations_scopes_and_annotations_from_the_pinned_tools(remote, tenants):
    register(remote.url)
    server = get_registry().get_server("fed_demo")
    assert set(server.operations) == {"echo", "add", "note", "slow", "big", "fail"}
    echo, add = server.operations["echo"], server.operations["add"]
    assert (echo.scope, echo.annotations.read_only, echo.annotations.open_world) == (
        "fed_demo:read",
        True,
        True,
    )
    assert (add.scope, add.annotations.read_only, add.annotations.destructive) == (
        "fed_demo:write",
        False,
        False,
    )
    assert echo.tool_name == "fed_demo_echo"


def test_it_answers_content_blocks_for_a_tool_without_an_output_schema(remote, tenants):
    register(remote.url)
    response = call_operation("fed_demo", "note", {"topic": "rain"}, principal=platform(), tenant="fed-a")
    assert response.success, response.error
    assert response.data == {"content": [{"type": "text", "text": "A note on rain."}]}


def test_it_lists_remote_tools_only_to_keys_with_the_services_scope(remote, tenants):
    register(remote.url)
    reader = {op.tool_name for op in operations_for(platform("fed_demo:read"))}
    assert {"fed_demo_echo", "fed_demo_note"} <= reader
    assert "fed_demo_add" not in reader
    assert not any(
        name.startswith("fed_") for name in (op.tool_name for op in operations_for(platform("stripe:*")))
    )
    refused = call_operation(
        "fed_demo", "add", {"a": 1, "b": 2}, principal=platform("fed_demo:read"), tenant="fed-a"
    )
    assert refused.error["code"] == "forbidden"


def test_it_offers_the_tool_on_the_mcp_endpoint_in_both_eras(remote, tenants, key_factory):
    register(remote.url)
    key = key_factory(tenant=tenants[0], scopes=["fed_demo:read"])
    client = Client()
    for era in (MODERN, LEGACY):
        tools = list_tools(client, key=key, era=era)
        assert "fed_demo_echo" in tools and "fed_demo_add" not in tools
        assert tools["fed_demo_echo"]["outputSchema"]["required"] == ["text"]
        result = call_tool(client, "fed_demo_echo", {"text": "via mcp"}, key=key, era=era)
        assert result["structuredContent"] == {"text": "via mcp"}


def test_it_keeps_a_remote_server_to_its_allowed_tenants(remote, tenants):
    a, b = tenants
    server = register(remote.url, all_tenants=False)
    server.tenants.set([a])
    bump_registry_version()  # what the admin's save does once the transaction commits
    assert call_operation("fed_demo", "echo", {"text": "x"}, principal=tenant_key(a)).success
    # Tenant B's key neither sees the tool nor learns it exists.
    assert "fed_demo_echo" not in {op.tool_name for op in operations_for(tenant_key(b))}
    unknown = call_operation("fed_demo", "nope", {}, principal=tenant_key(b))
    hidden = call_operation("fed_demo", "echo", {"text": "x"}, principal=tenant_key(b))
    assert hidden.error["code"] == unknown.error["code"] == "not_found"
    assert hidden.error["message"] == unknown.error["message"].replace("'nope'", "'echo'")
    # A platform key naming tenant B is told why.
    named = call_operation("fed_demo", "echo", {"text": "x"}, principal=platform(), tenant="fed-b")
    assert named.error["code"] == "forbidden" and named.error["details"]["field"] == "tenant"


def test_it_reports_the_remote_servers_health(remote, tenants):
    register(remote.url)
    server = get_registry().get_server("fed_demo")
    # The check itself (check_servers runs it in a thread, outside this test's transaction).
    result = server.health()
    assert result.status == HealthStatus.HEALTHY, result.detail
    assert "fed_demo" in get_registry().servers  # so mcp_health_check, the dashboard and /health/ run it


def test_it_joins_the_registry_of_another_process_through_the_shared_version(remote, tenants):
    register(remote.url)
    RemoteServer.objects.filter(slug="demo").update(enabled=False)
    # Another process disabled it and bumped the shared version; this one notices on its next check.
    with override_settings(MCP_REGISTRY_RECHECK_SECONDS=0):
        cache.incr(VERSION_KEY)
        assert get_registry().get_server("fed_demo") is None


def test_it_pins_tools_and_uses_a_changed_one_only_after_approval(tenants):
    changing = Remote("normal")
    try:
        server = register(changing.url, slug="rug")
        changing.mutate()
        report = services.sync_tools(server)
        assert (report.new_versions, report.removed) == (1, 1)
        pending = RemoteTool.objects.get(server=server, name="echo", status="pending")
        assert pending.version == 2
        diff = services.definition_diff(pending)
        assert '-  "description": "Return the text unchanged."' in diff
        assert "analytics" in diff
        # Still the pinned v1: its description, and its output schema checks the answer.
        bump_registry_version()
        op = get_registry().get_operation("fed_rug", "echo")
        assert "Return the text unchanged." in op.description
        assert get_registry().get_operation("fed_rug", "note") is None  # removed remotely
        refused = call_operation("fed_rug", "echo", {"text": "hi"}, principal=platform(), tenant="fed-a")
        assert refused.error["code"] == "upstream_error"
        assert refused.error["details"]["problem"] == "remote_answer_invalid"
        health = get_registry().get_server("fed_rug").health()
        assert health.status == HealthStatus.DEGRADED and "echo" in health.detail
        services.approve_tool(pending)
        bump_registry_version()
        op = get_registry().get_operation("fed_rug", "echo")
        assert "analytics" in op.description
        answer = call_operation("fed_rug", "echo", {"text": "hi"}, principal=platform(), tenant="fed-a")
        assert answer.success and answer.data == {"said": "hi", "length": 2}
        assert RemoteTool.objects.get(server=server, name="echo", version=1).status == "superseded"
    finally:
        changing.stop()


def test_it_lists_and_syncs_registrations_through_its_own_operations(remote, tenants):
    register(remote.url)
    listed = call_operation("federation", "list_servers", {}, principal=platform())
    assert listed.success and listed.data["servers"][0]["approved_tools"] == 6
    tools = call_operation("federation", "list_tools", {"server": "demo"}, principal=platform())
    assert {t["tool_name"] for t in tools.data["tools"]} >= {"fed_demo_echo", "fed_demo_add"}
    synced = call_operation("federation", "sync_server", {"server": "demo"}, principal=platform())
    assert synced.success and synced.data["unchanged"] == 6


def test_it_describes_remote_tools_in_the_api_discovery_and_openapi(remote, tenants, key_factory):
    register(remote.url)
    key = key_factory(tenant=None, scopes=["fed_demo:read"])
    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    listed = {s["name"]: s for s in client.get("/api/v1/mcp/services", **auth).json()["services"]}
    assert set(listed) == {"fed_demo"}  # the key's scope names this service only
    echo = next(op for op in listed["fed_demo"]["operations"] if op["name"] == "echo")
    assert echo["params_schema"]["properties"]["text"]["type"] == "string"
    answer = client.post(
        "/api/v1/mcp/fed_demo/echo?tenant=fed-a", {"text": "rest"}, content_type="application/json", **auth
    ).json()
    assert answer["success"] and answer["data"] == {"text": "rest"}


def test_it_reads_no_remote_servers_before_a_version_is_published_and_heals_a_lost_one(remote, tenants):
    register(remote.url)
    cache.delete(VERSION_KEY)  # a flushed cache
    with override_settings(MCP_REGISTRY_RECHECK_SECONDS=0):
        assert get_registry().get_server("fed_demo") is None
        assert get_registry().get_server("federation").health().status == HealthStatus.HEALTHY
        assert get_registry().get_server("fed_demo") is not None
