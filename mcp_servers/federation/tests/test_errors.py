"""Every remote failure and bad input mapped to its error code: a hanging server, an oversized
or malformed answer, a refused credential, bad arguments, unknown servers, and outbound
addresses outside the allow-list."""

from __future__ import annotations

import ipaddress
import time

import pytest
from django.test import override_settings

from mcp_core.pipeline import call_operation
from mcp_core.registry import bump_registry_version
from mcp_servers.federation import services
from mcp_servers.federation.client import RemoteMCPClient, address_problem, url_problem
from mcp_servers.federation.models import RemoteServer

from .conftest import TOKEN, Remote, platform, register

pytestmark = pytest.mark.django_db


def test_it_stops_a_hanging_remote_at_the_deadline(remote, tenants):
    # Fetched with the default deadline: a just-started server's first answers are slow on a
    # busy machine, and only the call is under test here.
    server = register(remote.url)
    server.timeout_seconds = 1.0
    server.save()
    bump_registry_version()  # the operation's deadline comes from the registration
    started = time.monotonic()
    response = call_operation("fed_demo", "slow", {}, principal=platform(), tenant="fed-a")
    assert response.error["code"] == "timeout"
    assert time.monotonic() - started < 5


def test_it_refuses_an_oversized_answer(remote, tenants):
    register(remote.url)
    with override_settings(FEDERATION_MAX_RESPONSE_BYTES=64 * 1024):
        response = call_operation("fed_demo", "big", {}, principal=platform(), tenant="fed-a")
    assert response.error["code"] == "upstream_error"
    assert response.error["details"]["problem"] == "answer_too_large"


def test_it_maps_a_remote_tool_error_to_upstream_error(remote, tenants):
    register(remote.url)
    response = call_operation("fed_demo", "fail", {}, principal=platform(), tenant="fed-a")
    assert response.error["code"] == "upstream_error"
    assert "broke on purpose" in response.error["message"]


@pytest.mark.parametrize(
    ("params", "field", "problem"),
    [
        ({}, "text", "missing"),
        ({"text": 5}, "text", "wrong_type"),
        ({"text": "x", "extra": 1}, "extra", "unknown"),
    ],
)
def test_it_validates_arguments_against_the_pinned_input_schema(remote, tenants, params, field, problem):
    register(remote.url)
    response = call_operation("fed_demo", "echo", params, principal=platform(), tenant="fed-a")
    assert response.error["code"] == "validation_error"
    assert (response.error["details"]["field"], response.error["details"]["problem"]) == (field, problem)


def test_it_refuses_a_malformed_server(tenants):
    malformed = Remote("malformed")
    try:
        server = RemoteServer.objects.create(slug="bad", title="Bad", url=malformed.url, enabled=True)
        with pytest.raises(Exception) as caught:
            services.sync_tools(server, timeout=5)
    finally:
        malformed.stop()
    assert caught.value.code == "upstream_error"
    server.refresh_from_db()
    assert server.last_sync_error


@pytest.mark.parametrize("era", ["legacy", "2026-07-28"])
def test_it_sends_the_platforms_bearer_token_and_maps_a_refusal(tenants, era):
    guarded = Remote("bearer")
    try:
        register(guarded.url, slug="auth", era=era, token=TOKEN)
        ok = call_operation("fed_auth", "echo", {"text": "in"}, principal=platform(), tenant="fed-a")
        wrong = RemoteMCPClient(url=guarded.url, era=era, token="not-the-token")
        with pytest.raises(Exception) as caught:
            wrong.list_tools(5)
    finally:
        guarded.stop()
    assert ok.success, ok.error
    assert caught.value.code == "upstream_error"
    assert "not-the-token" not in caught.value.message and TOKEN not in caught.value.message


def test_it_refuses_private_and_metadata_addresses_unless_allowed():
    with override_settings(FEDERATION_ALLOWED_NETWORKS=[]):
        for host in (
            "127.0.0.1",
            "10.1.2.3",
            "169.254.169.254",
            "192.168.0.1",
            "::1",
            "fd00::1",
            "100.64.0.1",
        ):
            assert address_problem(ipaddress.ip_address(host)), host
        assert address_problem(ipaddress.ip_address("::ffff:10.0.0.1"))
        assert address_problem(ipaddress.ip_address("93.184.216.34")) is None
        client = RemoteMCPClient(url="http://169.254.169.254/mcp", era="legacy")
        with pytest.raises(Exception) as caught:
            client.list_tools(3)
        assert caught.value.code == "forbidden" and caught.value.details["problem"] == "address_refused"
        # A name that resolves to loopback is refused too.
        with pytest.raises(Exception) as caught:
            RemoteMCPClient(url="http://localhost:9/mcp", era="legacy").list_tools(3)
        assert caught.value.code == "forbidden"
    with override_settings(FEDERATION_ALLOWED_NETWORKS=["10.0.0.0/8"]):
        assert address_problem(ipaddress.ip_address("10.1.2.3")) is None


def test_it_refuses_urls_with_credentials_or_other_schemes():
    assert url_problem("ftp://example.com/mcp")
    assert url_problem("https://user:pw@example.com/mcp")
    assert url_problem("https://example.com/mcp") is None


def test_it_answers_not_found_for_an_unknown_server(tenants):
    response = call_operation("federation", "list_tools", {"server": "nosuch"}, principal=platform())
    assert response.error["code"] == "not_found" and response.error["details"]["field"] == "server"


def test_it_refuses_the_federation_operations_to_tenant_keys(tenants):
    from .conftest import tenant_key

    response = call_operation("federation", "list_servers", {}, principal=tenant_key(tenants[0]))
    assert response.error["code"] == "forbidden"


@pytest.mark.parametrize(
    ("definition", "problem"),
    [
        ({"name": "bad name!", "inputSchema": {"type": "object"}}, "name:"),
        ({"name": "t", "inputSchema": {"type": "array"}}, "inputSchema:"),
        (
            {"name": "t", "inputSchema": {"type": "object", "properties": {"x": {"type": 5}}}},
            "not a valid JSON Schema",
        ),
        (
            {"name": "t", "inputSchema": {"type": "object", "properties": {"tenant": {"type": "string"}}}},
            "tenant",
        ),
        ({"name": "t", "inputSchema": {"type": "object"}, "description": "x" * 5000}, "description:"),
        ({"name": "t", "inputSchema": {"type": "object", "description": "x" * 70_000}}, "larger than"),
        (
            {"name": "t", "inputSchema": {"type": "object"}, "outputSchema": {"type": "string"}},
            "outputSchema:",
        ),
    ],
)
def test_it_refuses_tool_definitions_that_cannot_become_operations(definition, problem):
    from mcp_servers.federation.schemas import definition_problem

    assert problem in (definition_problem(definition) or "")


def test_it_never_approves_an_invalid_version(tenants):
    from mcp_core.contracts import MCPError
    from mcp_servers.federation.models import RemoteTool

    server = RemoteServer.objects.create(slug="inv", title="Inv", url="https://example.com/mcp")
    tool = RemoteTool.objects.create(
        server=server,
        name="t",
        operation="t",
        digest="x",
        definition={"name": "t"},
        status="invalid",
        problem="bad",
    )
    with pytest.raises(MCPError) as refused:
        services.approve_tool(tool)
    assert refused.value.code == "validation_error"
    tool.refresh_from_db()
    assert tool.status == "invalid"
