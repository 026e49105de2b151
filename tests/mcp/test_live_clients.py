"""The official MCP Python SDK client (an independent implementation) against a live gunicorn
process and against `manage.py mcp_stdio`, in both protocol eras."""

from __future__ import annotations

import sys

import anyio
import httpx2
import jsonschema
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from askpro.models import Branch
from mcp_core.models import AuditEntry
from tests.mcp.conftest import ROOT, child_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MODES = ["legacy", "2026-07-28"]


async def _exercise(client: Client, other_branch_id: int) -> dict:
    """What every transport must do the same: list, call, fail on bad args and foreign records."""
    listed = await client.list_tools()
    tools = {tool.name: tool for tool in listed.tools}
    stats = await client.call_tool("database_get_call_stats", {"days": 30})
    bad = await client.call_tool("database_get_call_stats", {"days": "thirty"})
    foreign = await client.call_tool("database_get_call_stats", {"branch_id": other_branch_id})
    named = await client.call_tool("database_get_tenant_stats", {"tenant": "bob-practice"})
    search = await client.call_tool("mcp_search_tools", {"query": "why are calls failing"})
    return {
        "version": client.protocol_version,
        "tools": tools,
        "stats": stats,
        "bad": bad,
        "foreign": foreign,
        "named": named,
        "search": search,
    }


def _check(outcome: dict, mode: str) -> None:
    assert outcome["version"] == ("2025-11-25" if mode == "legacy" else mode)
    tools = outcome["tools"]
    assert "database_get_call_stats" in tools
    assert "database_query" not in tools  # platform-only: hidden from a tenant key
    schema = tools["database_get_call_stats"].output_schema
    stats = outcome["stats"]
    assert stats.is_error is False
    jsonschema.validate(stats.structured_content, schema)
    assert stats.structured_content["days"] == 30
    assert stats.structured_content["total"] == 1
    assert outcome["bad"].is_error is True
    assert outcome["bad"].content[0].text.startswith("validation_error: days:")
    assert outcome["foreign"].is_error is True
    assert outcome["foreign"].content[0].text.startswith("not_found: branch_id:")
    assert outcome["named"].is_error is True
    assert outcome["named"].content[0].text.startswith("forbidden:")
    names = [match["name"] for match in outcome["search"].structured_content["matches"]]
    assert "database_get_call_stats" in names[:3]


@pytest.mark.parametrize("mode", MODES)
def test_it_serves_the_sdk_client_over_http(live_server_url, alice, bob, alice_key, mode):
    bobs_branch = Branch.objects.get(company=bob).pk

    async def run():
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {alice_key}"}) as http,
            Client(streamable_http_client(live_server_url, http_client=http), mode=mode) as c,
        ):
            return await _exercise(c, bobs_branch)

    _check(anyio.run(run), mode)
    entries = AuditEntry.objects.filter(transport="mcp", service="database")
    assert entries.count() == 4  # every tools/call of an operation, failures included
    assert set(entries.values_list("error_code", flat=True)) == {
        "",
        "validation_error",
        "not_found",
        "forbidden",
    }


@pytest.mark.parametrize("mode", MODES)
def test_it_turns_away_the_sdk_client_without_a_key(live_server_url, db, mode):
    seen: list[tuple[int, str]] = []

    async def record(response):
        seen.append((response.status_code, response.headers.get("www-authenticate", "")))

    async def run():
        async with (
            httpx2.AsyncClient(event_hooks={"response": [record]}) as http,
            Client(streamable_http_client(live_server_url, http_client=http), mode=mode) as c,
        ):
            await c.list_tools()

    with pytest.raises(BaseException):  # noqa: B017 - the SDK wraps the refusal in an ExceptionGroup
        anyio.run(run)
    assert seen and all(status == 401 for status, _ in seen)
    assert seen[0][1].startswith("Bearer")

    async def raw():
        async with httpx2.AsyncClient() as http:
            return await http.post(live_server_url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})

    response = anyio.run(raw)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_it_refuses_over_http_what_a_client_must_be_refused(live_server_url, alice, alice_key):
    auth = {"Authorization": f"Bearer {alice_key}", "Accept": "application/json, text/event-stream"}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}

    async def run():
        async with httpx2.AsyncClient(headers=auth) as http:
            get = await http.get(live_server_url)
            origin = await http.post(live_server_url, json=body, headers={"Origin": "https://evil.example"})
            version = await http.post(
                live_server_url, json=body, headers={"MCP-Protocol-Version": "2099-01-01"}
            )
            modern = {
                **body,
                "params": {
                    "_meta": {
                        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                        "io.modelcontextprotocol/clientCapabilities": {},
                    }
                },
            }
            mismatch = await http.post(
                live_server_url,
                json=modern,
                headers={"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call"},
            )
            return get, origin, version, mismatch

    get, origin, version, mismatch = anyio.run(run)
    assert get.status_code == 405
    assert origin.status_code == 403
    assert version.status_code == 400
    assert version.json()["error"]["code"] == -32022
    assert mismatch.status_code == 400
    assert mismatch.json()["error"]["code"] == -32020


@pytest.mark.parametrize("mode", MODES)
def test_it_serves_the_sdk_client_over_stdio(alice, bob, alice_key, mode):
    bobs_branch = Branch.objects.get(company=bob).pk
    params = StdioServerParameters(
        command=sys.executable,
        args=["manage.py", "mcp_stdio"],
        env=child_env(MCP_API_KEY=alice_key),
        cwd=str(ROOT),
    )

    async def run():
        async with Client(params, mode=mode) as c:
            return await _exercise(c, bobs_branch)

    _check(anyio.run(run), mode)
    assert AuditEntry.objects.filter(transport="mcp", service="database").count() == 4
