"""Limits on what a caller may send, checked before anything parses it (docs/input-limits.md).

`RequestLimitsMiddleware` guards every HTTP entry point: the headers the project reads must be
short, visible ASCII; a body is read at most up to its limit (with or without Content-Length),
and a JSON body may not nest deeper than REQUEST_MAX_JSON_DEPTH. A refusal is JSON in the
shape of the entry point (JSON-RPC on /mcp, the MCPResponse envelope on the API, a small
object elsewhere), never Django's HTML page. The stdio transport, which has no middleware,
uses the same functions line by line.

Nothing refused here reaches authentication or the pipeline, so it is not audited.
"""

from __future__ import annotations

import array
import io
import itertools
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

# PostgreSQL's bigint and integer columns; Cal.com's ids are 32-bit too.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MAX = 2**31 - 1

# JSON-RPC 2.0 codes (the /mcp and stdio refusals).
PARSE_ERROR = -32700
INVALID_REQUEST = -32600

# Headers the project reads, each with its own longest value; all must be visible ASCII.
# X-Request-ID lands in the audit row (64 chars) and Idempotency-Key in stored keys (255).
_HEADER_LIMITS = {
    "Authorization": None,  # REQUEST_MAX_HEADER_CHARS
    "Idempotency-Key": 255,
    "X-Request-ID": 64,
    "Mcp-Session-Id": 256,
    "MCP-Protocol-Version": 64,
    "Mcp-Method": 256,
    "Mcp-Name": 1024,
}
# Plus the signature header of every inbound webhook, with the limit its server declares
# (mcp_core.webhooks): read from the registry once it exists (see _header_limits).
_registry_limits: tuple[object, dict[str, int | None], dict[str, str]] | None = None
_VISIBLE_ASCII = re.compile(r"[\x20-\x7e]*")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Paths whose bodies are always parsed as JSON, whatever their Content-Type says.
# The machine paths: refusals there are JSON. The OAuth endpoints clients call (not the consent
# and client pages a person sees) are among them.
_OAUTH_JSON_PATHS = ("/.well-known/", "/oauth/token/", "/oauth/revoke/", "/oauth/register/")
_JSON_PATHS = ("/mcp", "/api/", "/webhooks/", *_OAUTH_JSON_PATHS)

# A JSON string (its contents may hold brackets that are no nesting).
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEPS = bytes.maketrans(b"[]{}", b"\x01\xff\x01\xff")  # as signed bytes: +1, -1


@dataclass(frozen=True)
class Refusal:
    """Why input was refused: the field (a header, `body`, a JSON path), a short problem code,
    a message for people, the HTTP status, and the limit broken, if any."""

    field: str
    problem: str
    message: str
    status: int = 400
    limit: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def details(self) -> dict[str, Any]:
        details: dict[str, Any] = {"field": self.field, "problem": self.problem}
        if self.limit is not None:
            details["limit"] = self.limit
        return {**details, **self.extra}


def shown(text: str, limit: int = 120) -> str:
    """Text safe to put in any message: control characters and lone surrogates escaped (an
    answer holding a lone surrogate cannot be encoded as UTF-8), cut to `limit`."""
    text = text[:limit] + ("…" if len(text) > limit else "")
    out = []
    for char in text:
        code = ord(char)
        if code < 0x20 or code == 0x7F or 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def string_problem(text: str) -> str | None:
    """What makes a string unstorable (PostgreSQL text and jsonb refuse NUL; UTF-8 has no lone
    surrogates), or None."""
    if "\x00" in text:
        return "contains a NUL character, which is not allowed"
    if has_lone_surrogate(text):
        return "contains a lone surrogate (\\ud800-\\udfff), which is not valid Unicode"
    return None


def json_too_deep(body: bytes | str, limit: int) -> bool:
    """Whether a JSON text nests arrays/objects deeper than `limit` (counting openers never
    closed), found without parsing it: parsers recurse, and deep enough input is a
    RecursionError, i.e. a 500. Most bodies are settled by two C-level counts."""
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    # Brackets inside strings are no nesting; what is left becomes +1/-1 steps (signed bytes).
    steps = array.array("b", _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS).translate(_STEPS))
    return max(itertools.accumulate(steps), default=0) > limit


def _header_limits() -> tuple[dict[str, int | None], dict[str, str]]:
    """Every header the project reads with its limit, and its META key. Computed once per
    registry (the registry is frozen, and the limits module is imported before it exists)."""
    global _registry_limits
    from .registry import get_registry

    registry = get_registry()
    known = _registry_limits
    if known is None or known[0] is not registry:
        limits = dict(_HEADER_LIMITS)
        for hook in registry.webhooks.values():
            limits[hook.signature_header] = hook.signature_max_chars
        meta = {name: "HTTP_" + name.upper().replace("-", "_") for name in limits}
        known = _registry_limits = (registry, limits, meta)
    return known[1], known[2]


def header_refusal(name: str, value: str) -> Refusal | None:
    """Length and shape of one header the project reads."""
    limit = _header_limits()[0].get(name) or settings.REQUEST_MAX_HEADER_CHARS
    if len(value) > limit:
        return Refusal(name, "too_long", f"{name}: longer than {limit} characters", limit=limit, status=400)
    if not _VISIBLE_ASCII.fullmatch(value):
        return Refusal(
            name,
            "invalid_characters",
            f"{name}: only printable ASCII is allowed (no control characters, NUL or non-ASCII)",
        )
    if name == "X-Request-ID" and not _REQUEST_ID.fullmatch(value):
        return Refusal(name, "invalid", "X-Request-ID: must be 1 to 64 letters, digits, '.', '_' or '-'")
    return None


def body_limit_for(path: str) -> int:
    if path.startswith("/webhooks/"):
        return settings.WEBHOOK_MAX_BODY_BYTES
    return settings.REQUEST_MAX_BODY_BYTES


def too_large(limit: int) -> Refusal:
    return Refusal(
        "body",
        "too_large",
        f"body: larger than the limit of {limit} bytes",
        status=413,
        limit=limit,
    )


def too_deep(limit: int, where: str = "body") -> Refusal:
    return Refusal(
        where, "too_deep", f"{where}: JSON nested deeper than {limit} levels", status=400, limit=limit
    )


def check_request(request: HttpRequest) -> Refusal | None:
    """Headers, body size and JSON depth of one request. Leaves the body read (bounded) on the
    request, so views read it as usual."""
    meta = request.META
    for name, key in _header_limits()[1].items():
        value = meta.get(key)
        if value is None or (value == "" and name == "X-Request-ID"):
            continue  # an empty X-Request-ID counts as absent: the server makes one up
        refusal = header_refusal(name, value)
        if refusal is not None:
            return refusal
    limit = body_limit_for(request.path_info)
    raw_length = meta.get("CONTENT_LENGTH") or ""
    if raw_length:
        if not raw_length.isdigit() or len(raw_length) > 18:
            return Refusal("Content-Length", "invalid", "Content-Length: must be a whole number of bytes")
        if int(raw_length) > limit:
            return too_large(limit)
    elif request.method not in _BODY_METHODS:
        return None
    # Read at most one byte past the limit, whatever Content-Length said (it may be absent, as
    # with chunked bodies, or understated): memory stays bounded by the limit.
    body = request.read(limit + 1)
    if len(body) > limit:
        return too_large(limit)
    request._body = body
    request._stream = io.BytesIO(body)
    request._read_started = False
    if body and (request.path_info.startswith(_JSON_PATHS) or "json" in (request.content_type or "").lower()):
        depth = settings.REQUEST_MAX_JSON_DEPTH
        if json_too_deep(body, depth):
            return too_deep(depth)
    return None


def refusal_body(path: str, refusal: Refusal) -> dict[str, Any]:
    """The refusal in the shape the entry point answers in."""
    if path == "/mcp" or path.startswith("/mcp/"):
        code = PARSE_ERROR if refusal.problem == "too_deep" else INVALID_REQUEST
        return jsonrpc_error(code, refusal)
    if path.startswith("/api/"):
        return {
            "success": False,
            "data": None,
            "error": {"code": "validation_error", "message": refusal.message, "details": refusal.details()},
            "metadata": {},
        }
    if path.startswith(_OAUTH_JSON_PATHS):
        # RFC 6749 section 5.2's shape, which OAuth clients parse.
        return {"error": "invalid_request", "error_description": refusal.message, **refusal.details()}
    return {"error": refusal.message, **refusal.details()}


def refusal_response(request: HttpRequest, refusal: Refusal) -> HttpResponse:
    return JsonResponse(refusal_body(request.path_info, refusal), status=refusal.status)


def jsonrpc_error(code: int, refusal: Refusal, request_id: Any = None) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {"code": code, "message": refusal.message, "data": refusal.details()},
    }


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler400: what Django itself refuses (a Host not in ALLOWED_HOSTS, too many form
    fields, ...) is JSON on the machine paths, in their shape; the admin keeps Django's page."""
    if not request.path_info.startswith(_JSON_PATHS):
        from django.views.defaults import bad_request as django_bad_request

        return django_bad_request(request, exception)
    refusal = Refusal(
        "request", "bad_request", "request: refused (check the Host header and the request's form)"
    )
    if type(exception).__name__ == "DisallowedHost":
        refusal = Refusal("Host", "not_allowed", "Host: not one of this server's ALLOWED_HOSTS")
    return JsonResponse(refusal_body(request.path_info, refusal), status=400)


class RequestLimitsMiddleware:
    """Refuses oversized bodies (413), over-deep JSON and malformed headers (400) as JSON,
    before any view, parser or authentication sees them."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        refusal = check_request(request)
        if refusal is not None:
            logger.info(
                "refused %s %s: %s (%s)", request.method, request.path_info, refusal.field, refusal.problem
            )
            return refusal_response(request, refusal)
        return self.get_response(request)


class BoundedBodyASGI:
    """ASGI wrapper: Django's ASGI handler reads a whole body (to memory, then to disk) before
    any middleware runs, Content-Length or not. This reads at most the path's limit + 1 bytes,
    answers a larger body with the JSON 413 itself, and hands the rest on as one message."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit_for(scope["path"])
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message], receive), send)  # a disconnect: Django's to handle
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _send_json(send, refusal_body(scope["path"], too_large(limit)), 413)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        whole = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([whole], receive), send)


def _replay(messages: list[dict], receive):
    async def replayed():
        return messages.pop(0) if messages else await receive()

    return replayed


async def _send_json(send, body: dict[str, Any], status: int) -> None:
    content = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})
