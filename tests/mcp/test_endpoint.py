"""The /mcp endpoint in-process (Django's test client on the real view): tools from the
registry, scopes, tenant isolation, tool errors, and what a client must be refused."""

from __future__ import annotations

import json

import jsonschema
import pytest
from django.test import Client

from askpro.models import Branch
from mcp_core.models import AuditEntry
from tests.mcp.helpers import LEGACY, MODERN, call_tool, list_tools, post

pytestmark = pytest.mark.django_db

ERAS = [MODERN, LEGACY]


@pytest.fixture
def client() -> Client:
    return Client()


@pytest.mark.parametrize("era", ERAS)
def test_it_lists_one_tool_per_operation_with_schemas_and_annotations(client, platform_key, era):
    from mcp_core.registry import get_registry

    tools = list_tools(client, key=platform_key, era=era)
    expected = {op.tool_name for op in get_registry().operations()} | {"mcp_search_tools"}
    assert set(tools) == expected
    stats = tools["database_get_call_stats"]
    assert stats["inputSchema"]["additionalProperties"] is False
    assert set(stats["inputSchema"]["properties"]) == {"days", "branch_id", "tenant"}
    assert stats["outputSchema"]["type"] == "object"
    assert stats["annotations"] == {
        "readOnlyHint": True,
        "destructiveHint": False,
        "idempotentHint": True,
        "openWorldHint": False,
    }
    assert "Needs scope database:read" in stats["description"]
    # Not tenant-scoped: no tenant argument to offer.
    assert "tenant" not in tools["database_query"]["inputSchema"]["properties"]


def test_it_lists_only_the_tools_a_keys_scopes_allow(client, alice, key_factory):
    reader = key_factory(tenant=alice, scopes=["database:read"])
    tools = list_tools(client, key=reader)
    assert "database_get_call_stats" in tools
    # query needs database:admin and a platform key; other services need their own scopes.
    assert "database_query" not in tools
    assert all(name.startswith("database_") or name == "mcp_search_tools" for name in tools)
    admin_tenant_key = key_factory(tenant=alice, scopes=["database:admin"])
    assert "database_query" not in list_tools(client, key=admin_tenant_key)  # platform only


def test_it_calls_a_read_tool_through_the_pipeline_and_audits_it(client, alice, alice_key):
    tools = list_tools(client, key=alice_key)
    result = call_tool(client, "database_get_tenant_stats", {}, key=alice_key)
    assert result["isError"] is False
    jsonschema.validate(result["structuredContent"], tools["database_get_tenant_stats"]["outputSchema"])
    assert result["structuredContent"]["tenant"] == "alice-salon"
    assert json.loads(result["content"][0]["text"]) == result["structuredContent"]
    entry = AuditEntry.objects.get(operation="get_tenant_stats")
    assert entry.transport == "mcp"
    assert entry.tenant_id == alice.pk
    assert entry.outcome == AuditEntry.Outcome.SUCCESS


def test_it_lets_a_platform_key_name_the_tenant(client, alice, bob, platform_key):
    result = call_tool(client, "database_get_tenant_stats", {"tenant": "bob-practice"}, key=platform_key)
    assert result["isError"] is False
    assert result["structuredContent"]["tenant"] == "bob-practice"
    missing = call_tool(client, "database_get_tenant_stats", {}, key=platform_key)
    assert missing["isError"] is True
    assert missing["content"][0]["text"].startswith("validation_error: tenant:")


# transaction=True: with the test's own transaction open, django-mcpz would roll the failed
# tool's savepoint (and its audit row) back; in production /mcp runs in autocommit.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("era", ERAS)
def test_it_reports_bad_arguments_as_a_tool_error_naming_the_field(client, alice, alice_key, era):
    result = call_tool(client, "database_get_call_stats", {"days": "seven"}, key=alice_key, era=era)
    assert result["isError"] is True
    text = result["content"][0]["text"]
    assert text.startswith("validation_error: days:")
    assert '"field": "days"' in text
    assert "Fix the named argument" in text
    unknown = call_tool(client, "database_get_call_stats", {"dayz": 3}, key=alice_key, era=era)
    assert unknown["isError"] is True
    assert "dayz" in unknown["content"][0]["text"]
    # Refused calls are audited like any other.
    assert AuditEntry.objects.filter(transport="mcp", error_code="validation_error").count() == 2


def test_it_keeps_a_tenant_key_away_from_another_tenants_records(client, alice, bob, alice_key):
    named = call_tool(client, "database_get_tenant_stats", {"tenant": "bob-practice"}, key=alice_key)
    assert named["isError"] is True
    assert named["content"][0]["text"].startswith("forbidden:")
    bobs_branch = Branch.objects.get(company=bob)
    record = call_tool(client, "database_get_call_stats", {"branch_id": bobs_branch.pk}, key=alice_key)
    assert record["isError"] is True
    assert record["content"][0]["text"].startswith("not_found: branch_id:")
    assert "bob" not in record["content"][0]["text"].lower()


@pytest.mark.django_db(transaction=True)
def test_it_refuses_and_audits_a_call_to_a_tool_outside_the_keys_scopes(client, alice, key_factory):
    reader = key_factory(tenant=alice, scopes=["database:read"])
    result = call_tool(client, "database_query", {"sql": "SELECT 1"}, key=reader)
    assert result["isError"] is True
    assert result["content"][0]["text"].startswith("forbidden: This key lacks the scope 'database:admin'")
    assert AuditEntry.objects.filter(operation="query", error_code="forbidden").exists()


@pytest.mark.parametrize("era", ERAS)
def test_it_answers_an_unknown_tool_with_a_protocol_error(client, alice_key, era):
    response = post(client, "tools/call", {"name": "nope_nothing", "arguments": {}}, key=alice_key, era=era)
    assert response.json()["error"]["code"] == -32602
    assert "nope_nothing" in response.json()["error"]["message"]


@pytest.mark.parametrize("key", [None, "askp_0123456789_not-a-real-key"])
def test_it_challenges_a_missing_or_bad_key_with_401(client, db, key):
    response = post(client, "tools/list", key=key)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    if key:
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    ("body", "service", "operation"),
    [
        ({"method": "tools/call", "params": {"name": "database_get_tenant_stats", "arguments": {}}},
         "database", "get_tenant_stats"),
        ({"method": "tools/call", "params": {"name": "nope_nothing", "arguments": {}}}, "mcp", "tools/call"),
        ({"method": "tools/list", "params": {}}, "mcp", "tools/list"),
        (None, "mcp", "unreadable request"),
    ],
)  # fmt: skip
def test_it_audits_a_refused_request_like_the_rest_api_does(client, db, body, service, operation):
    payload = "{not json" if body is None else json.dumps({"jsonrpc": "2.0", "id": 1, **body})
    response = client.post(
        "/mcp",
        payload,
        content_type="application/json",
        headers={"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": LEGACY,
                 "Authorization": "Bearer askp_0123456789_stolen-or-made-up", "X-Request-ID": "refused-1"},
    )  # fmt: skip
    assert response.status_code == 401
    entry = AuditEntry.objects.get(request_id="refused-1")
    assert (entry.service, entry.operation, entry.transport) == (service, operation, "mcp")
    assert (entry.principal, entry.error_code, entry.api_key_id) == ("anonymous", "unauthorized", None)
    assert "stolen" not in json.dumps(entry.params) + entry.error_message


def test_it_serves_the_legacy_handshake_statelessly(client, alice_key):
    response = post(
        client,
        "initialize",
        {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
        key=alice_key,
        era=None,
    )
    result = response.json()["result"]
    assert result["protocolVersion"] == LEGACY
    assert "tools" in result["capabilities"]
    assert "Mcp-Session-Id" not in response.headers
    assert "mcp_search_tools" in result["instructions"]
    body = json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"})
    ack = client.post(
        "/mcp", body, content_type="application/json", headers={"Authorization": f"Bearer {alice_key}"}
    )
    assert ack.status_code == 202


def test_it_answers_server_discover_in_the_modern_era(client, alice_key):
    result = post(client, "server/discover", key=alice_key).json()["result"]
    assert MODERN in result["supportedVersions"]
    assert LEGACY in result["supportedVersions"]
    assert result["resultType"] == "complete"


# --- what a client must be refused -------------------------------------------------------


def test_it_refuses_get_with_405(client, alice_key):
    response = client.get("/mcp", headers={"Authorization": f"Bearer {alice_key}"})
    assert response.status_code == 405


def test_it_refuses_a_foreign_origin_with_403(client, alice_key):
    response = post(client, "tools/list", key=alice_key, headers={"Origin": "https://evil.example.com"})
    assert response.status_code == 403
    allowed = post(client, "tools/list", key=alice_key, headers={"Origin": "http://localhost:8000"})
    assert allowed.status_code == 200


def test_it_refuses_a_foreign_host(client, alice_key):
    response = post(client, "tools/list", key=alice_key, headers={"Host": "evil.example.com"})
    assert response.status_code == 400


def test_it_refuses_an_unsupported_protocol_version(client, alice_key):
    response = post(client, "tools/list", key=alice_key, headers={"MCP-Protocol-Version": "2099-01-01"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == -32022
    assert error["data"]["requested"] == "2099-01-01"
    assert MODERN in error["data"]["supported"]


def test_it_refuses_a_header_body_mismatch(client, alice, alice_key):
    method = post(client, "tools/list", key=alice_key, headers={"Mcp-Method": "tools/call"})
    assert method.status_code == 400
    assert method.json()["error"]["code"] == -32020
    name = post(
        client,
        "tools/call",
        {"name": "database_get_tenant_stats", "arguments": {}},
        key=alice_key,
        headers={"Mcp-Name": "database_query"},
    )
    assert name.status_code == 400
    assert name.json()["error"]["code"] == -32020
    assert not AuditEntry.objects.exists()  # refused before any tool ran


def test_it_refuses_malformed_json_rpc(client, alice_key):
    headers = {"Authorization": f"Bearer {alice_key}", "MCP-Protocol-Version": MODERN}
    garbage = client.post("/mcp", "{not json", content_type="application/json", headers=headers)
    assert garbage.status_code == 400
    assert garbage.json()["error"]["code"] == -32700
    no_method = client.post(
        "/mcp", json.dumps({"jsonrpc": "2.0", "id": 1}), content_type="application/json", headers=headers
    )
    assert no_method.json()["error"]["code"] == -32600


def test_it_stops_accepting_a_revoked_key_within_the_auth_cache_window(client, alice, key_factory, settings):
    from django.utils import timezone

    from mcp_core.api_keys import forget_cached_keys
    from mcp_core.models import ApiKey

    settings.MCP_AUTH_CACHE_SECONDS = 60
    key = key_factory(tenant=alice, scopes=["database:read"])
    assert post(client, "tools/list", key=key).status_code == 200
    ApiKey.objects.filter(prefix=key.split("_")[1]).update(revoked_at=timezone.now())
    # Remembered for at most MCP_AUTH_CACHE_SECONDS (the documented bound) ...
    assert post(client, "tools/list", key=key).status_code == 200
    forget_cached_keys()
    assert post(client, "tools/list", key=key).status_code == 401
    # ... and with the cache off, a revocation is seen on the next call.
    settings.MCP_AUTH_CACHE_SECONDS = 0
    other = key_factory(tenant=alice, scopes=["database:read"])
    assert post(client, "tools/list", key=other).status_code == 200
    ApiKey.objects.filter(prefix=other.split("_")[1]).update(revoked_at=timezone.now())
    assert post(client, "tools/list", key=other).status_code == 401


def test_it_derives_tools_list_and_the_discovery_endpoint_from_the_same_registry(client, alice, key_factory):
    from mcp_core.mcp.tools import tool_input_schema
    from mcp_core.registry import get_registry

    key = key_factory(tenant=alice, scopes=["database:read", "calcom:*"])
    tools = list_tools(client, key=key)
    services = client.get("/api/v1/mcp/services", headers={"Authorization": f"Bearer {key}"}).json()
    described = {op["tool_name"]: op for service in services["services"] for op in service["operations"]}
    assert set(tools) - {"mcp_search_tools"} == set(described)
    by_tool = get_registry().by_tool_name()
    for name, op in described.items():
        assert tools[name]["inputSchema"] == tool_input_schema(by_tool[name])
        assert tools[name]["outputSchema"] == op["result_schema"]
        properties = dict(tools[name]["inputSchema"]["properties"])
        if op["tenant_scoped"]:
            properties.pop("tenant")
        assert properties == op["params_schema"]["properties"]
