"""The stdio bridge in-process: one line in, at most one line out, through the /mcp view."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from mcp_core.mcp.stdio import handle_line, serve
from tests.mcp.helpers import MODERN, modern_meta

pytestmark = pytest.mark.django_db


def line(method: str, params: dict | None = None, *, request_id: int | None = 1) -> str:
    message = {"jsonrpc": "2.0", "method": method, "params": params or {}}
    if request_id is not None:
        message["id"] = request_id
    return json.dumps(message)


def test_it_derives_the_modern_headers_from_the_message(alice, alice_key):
    params = {"name": "database_get_tenant_stats", "arguments": {}, "_meta": modern_meta()}
    reply = json.loads(handle_line(line("tools/call", params), alice_key))
    assert reply["result"]["structuredContent"]["tenant"] == "alice-salon"
    assert reply["result"]["resultType"] == "complete"


def test_it_speaks_the_legacy_handshake_without_headers(alice_key):
    params = {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    }
    reply = json.loads(handle_line(line("initialize", params), alice_key))
    assert reply["result"]["protocolVersion"] == "2025-11-25"
    assert handle_line(line("notifications/initialized", request_id=None), alice_key) is None


def test_it_answers_garbage_with_a_parse_error_and_ignores_blank_lines(alice_key):
    assert json.loads(handle_line("{nope", alice_key))["error"]["code"] == -32700
    assert handle_line("   \n", alice_key) is None


def test_it_writes_one_line_per_request(alice, alice_key):
    out = io.StringIO()
    lines = [
        line("tools/list", {"_meta": modern_meta()}, request_id=1),
        "",
        line("server/discover", {"_meta": modern_meta()}, request_id=2),
    ]
    serve(lines, out, alice_key)
    replies = [json.loads(text) for text in out.getvalue().splitlines()]
    assert [reply["id"] for reply in replies] == [1, 2]
    assert MODERN in replies[1]["result"]["supportedVersions"]


def test_it_refuses_to_start_without_a_valid_key(monkeypatch, capsys):
    monkeypatch.setenv("MCP_API_KEY", "askp_0123456789_wrong")
    with pytest.raises(SystemExit) as exited:
        call_command("mcp_stdio")
    assert exited.value.code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "not a valid, active API key" in captured.err


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_writes_nothing_but_protocol_messages_to_stdout(alice, alice_key):
    import subprocess
    import sys

    from tests.mcp.conftest import ROOT, child_env

    stdin = "\n".join(
        [
            line(
                "initialize",
                {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "t", "version": "1"},
                },
            ),
            line("notifications/initialized", request_id=None),
            line("tools/call", {"name": "database_get_call_stats", "arguments": {"days": "x"}}, request_id=2),
            "not json",
        ]
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "mcp_stdio"],
        input=stdin + "\n",
        cwd=ROOT,
        env=child_env(MCP_API_KEY=alice_key, LOG_LEVEL="DEBUG"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    replies = [json.loads(text) for text in result.stdout.splitlines()]
    assert [reply.get("id") for reply in replies] == [1, 2, None]
    assert all(reply["jsonrpc"] == "2.0" for reply in replies)
    assert replies[1]["result"]["isError"] is True
    assert "mcp_stdio serving as" in result.stderr  # the logs went to stderr
