"""Raw JSON-RPC over the Django test client, in either protocol era."""

from __future__ import annotations

import itertools
import json
from typing import Any

from django.test import Client

MODERN = "2026-07-28"
LEGACY = "2025-11-25"
_ids = itertools.count(1)


def modern_meta() -> dict[str, Any]:
    return {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "tests", "version": "1"},
    }


def post(
    client: Client,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    key: str | None,
    era: str = MODERN,
    headers: dict[str, str] | None = None,
    request_id: int | None = None,
):
    """POST one JSON-RPC request to /mcp the way a client of that era would."""
    params = dict(params or {})
    all_headers = {"Accept": "application/json, text/event-stream"}
    if key is not None:
        all_headers["Authorization"] = f"Bearer {key}"
    if era == MODERN:
        params["_meta"] = modern_meta()
        all_headers["MCP-Protocol-Version"] = MODERN
        all_headers["Mcp-Method"] = method
        if method == "tools/call":
            all_headers["Mcp-Name"] = params["name"]
    elif era == LEGACY:
        all_headers["MCP-Protocol-Version"] = LEGACY
    all_headers.update(headers or {})
    body = {"jsonrpc": "2.0", "id": request_id or next(_ids), "method": method, "params": params}
    return client.post("/mcp", json.dumps(body), content_type="application/json", headers=all_headers)


def call_tool(client: Client, name: str, arguments: dict[str, Any], *, key: str, era: str = MODERN):
    response = post(client, "tools/call", {"name": name, "arguments": arguments}, key=key, era=era)
    assert response.status_code == 200, response.content
    return response.json()["result"]


def list_tools(client: Client, *, key: str, era: str = MODERN) -> dict[str, dict]:
    response = post(client, "tools/list", key=key, era=era)
    assert response.status_code == 200, response.content
    return {tool["name"]: tool for tool in response.json()["result"]["tools"]}
