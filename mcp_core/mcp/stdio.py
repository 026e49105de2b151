"""MCP over stdio: each JSON-RPC line from stdin goes through the `/mcp` view itself (built
with RequestFactory), so stdio shares the endpoint's dispatch, auth and tools; there is no
second implementation of the protocol.

The stdio transport has no HTTP headers, so the headers the HTTP transport requires of a
2026-07-28 request (MCP-Protocol-Version, Mcp-Method, Mcp-Name) are derived from the message
itself; 2025-era messages carry no version header, which is what selects django-mcpz's legacy
(stateless initialize) path, as for a 2025-03-26 HTTP client.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import IO, Any

from django.db import close_old_connections, connections
from django.test import RequestFactory
from django_mcpz.headers import encode_header_value
from django_mcpz.jsonrpc import PARSE_ERROR

from .endpoint import mcp_view

logger = logging.getLogger(__name__)

META_PROTOCOL_VERSION = "io.modelcontextprotocol/protocolVersion"


def _headers_for(message: Any, api_key: str) -> dict[str, str]:
    headers = {
        "HTTP_AUTHORIZATION": f"Bearer {api_key}",
        "HTTP_ACCEPT": "application/json, text/event-stream",
    }
    if not isinstance(message, dict):
        return headers
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    version = meta.get(META_PROTOCOL_VERSION) if isinstance(meta, dict) else None
    if isinstance(version, str):
        headers["HTTP_MCP_PROTOCOL_VERSION"] = version
        method = message.get("method")
        if isinstance(method, str):
            headers["HTTP_MCP_METHOD"] = method
        name = params.get("name") if isinstance(params, dict) else None
        if method == "tools/call" and isinstance(name, str):
            headers["HTTP_MCP_NAME"] = encode_header_value(name)
    return headers


def handle_line(line: str, api_key: str, factory: RequestFactory | None = None) -> str | None:
    """One stdin line in, at most one stdout line out (None for notifications and blanks)."""
    line = line.strip()
    if not line:
        return None
    try:
        message = json.loads(line)
    except ValueError:
        return json.dumps(
            {"jsonrpc": "2.0", "id": None, "error": {"code": PARSE_ERROR, "message": "Invalid JSON"}}
        )
    factory = factory or RequestFactory()
    request = factory.post(
        "/mcp",
        data=line.encode(),
        content_type="application/json",
        **_headers_for(message, api_key),
    )
    try:
        response = mcp_view(request)
    finally:
        # What Django does around each HTTP request, so a long stdio session recovers from a
        # dropped database connection; never inside a caller's transaction (tests).
        if not any(conn.in_atomic_block for conn in connections.all(initialized_only=True)):
            close_old_connections()
    if response.status_code == 401:
        # The key was revoked while we ran: answer the request instead of going silent.
        request_id = message.get("id") if isinstance(message, dict) else None
        if request_id is None:
            return None
        return json.dumps(
            {
                "jsonrpc": "2.0",
                "id": request_id,
                "error": {"code": -32001, "message": "MCP_API_KEY is not a valid API key"},
            }
        )
    body = response.content.decode()
    return body or None


def serve(lines: Iterable[str], out: IO[str], api_key: str) -> None:
    factory = RequestFactory()
    for line in lines:
        reply = handle_line(line, api_key, factory)
        if reply is not None:
            out.write(reply + "\n")
            out.flush()
