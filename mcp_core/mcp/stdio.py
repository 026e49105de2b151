"""MCP over stdio: each JSON-RPC line from stdin goes through the `/mcp` view itself (built
with RequestFactory), so stdio shares the endpoint's dispatch, auth and tools; there is no
second implementation of the protocol.

The stdio transport has no HTTP headers, so the headers the HTTP transport requires of a
2026-07-28 request (MCP-Protocol-Version, Mcp-Method, Mcp-Name) are derived from the message
itself; 2025-era messages carry no version header, which is what selects django-mcpz's legacy
(stateless initialize) path, as for a 2025-03-26 HTTP client.

Hostile input never ends the process: stdin is read as bytes, a line at most
REQUEST_MAX_BODY_BYTES long (the rest of a longer one is skipped unread into memory), and a
line that is not UTF-8, nests too deep or is not JSON gets a JSON-RPC error, as over HTTP.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from typing import IO, Any

from django.conf import settings
from django.db import close_old_connections, connections
from django.test import RequestFactory
from django_mcpz.headers import encode_header_value
from django_mcpz.jsonrpc import read_id

from ..limits import INVALID_REQUEST, PARSE_ERROR, Refusal, header_refusal, jsonrpc_error
from .endpoint import body_refusal, mcp_view

logger = logging.getLogger(__name__)

META_PROTOCOL_VERSION = "io.modelcontextprotocol/protocolVersion"
INTERNAL_ERROR = -32603


class Oversized:
    """Stands for a line longer than the limit, which was skipped."""

    def __init__(self, limit: int) -> None:
        self.limit = limit


def read_lines(stream: IO[bytes], limit: int | None = None) -> Iterator[bytes | Oversized]:
    """Lines of at most `limit` bytes (newline excluded); a longer line is read past in bounded
    pieces and yielded as Oversized, so memory stays bounded whatever the client sends."""
    limit = limit or settings.REQUEST_MAX_BODY_BYTES
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            while True:
                rest = stream.readline(65536)
                if not rest or rest.endswith(b"\n"):
                    break
            yield Oversized(limit)
        else:
            yield line


def _error_line(code: int, refusal: Refusal, request_id: Any = None) -> str:
    return json.dumps(jsonrpc_error(code, refusal, request_id))


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


def _header_problem(headers: dict[str, str]) -> Refusal | None:
    """The headers derived from the message obey the same rules as over HTTP."""
    for key, name in (
        ("HTTP_MCP_PROTOCOL_VERSION", "MCP-Protocol-Version"),
        ("HTTP_MCP_METHOD", "Mcp-Method"),
    ):
        if key in headers:
            refusal = header_refusal(name, headers[key])
            if refusal is not None:
                return refusal
    return None


def handle_line(
    line: str | bytes | Oversized, api_key: str, factory: RequestFactory | None = None
) -> str | None:
    """One stdin line in, at most one stdout line out (None for notifications and blanks)."""
    if isinstance(line, Oversized):
        refusal = Refusal(
            "message",
            "too_large",
            f"message: larger than the limit of {line.limit} bytes",
            status=413,
            limit=line.limit,
        )
        return _error_line(INVALID_REQUEST, refusal)
    raw = line if isinstance(line, bytes) else line.encode("utf-8", "surrogatepass")
    raw = raw.strip()
    if not raw:
        return None
    refusal = body_refusal(raw)
    if refusal is not None:
        return _error_line(PARSE_ERROR, refusal)
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError):
        return _error_line(PARSE_ERROR, Refusal("message", "invalid_json", "message: not valid JSON"))
    headers = _headers_for(message, api_key)
    refusal = _header_problem(headers)
    if refusal is not None:
        return _error_line(INVALID_REQUEST, refusal, read_id(message))
    factory = factory or RequestFactory()
    request = factory.post("/mcp", data=raw, content_type="application/json", **headers)
    try:
        response = mcp_view(request)
    except Exception:
        # One message must never end the session: log it (with the traceback) and answer.
        logger.exception("mcp_stdio: a message raised")
        refusal = Refusal("message", "internal_error", "Internal error while handling this message")
        return _error_line(INTERNAL_ERROR, refusal, read_id(message))
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


def serve(lines: Iterable[str | bytes | Oversized], out: IO[str], api_key: str) -> None:
    factory = RequestFactory()
    for line in lines:
        reply = handle_line(line, api_key, factory)
        if reply is not None:
            out.write(reply + "\n")
            out.flush()
