"""The MCP endpoint `/mcp`: django-mcpz's stateless, dual-era Streamable HTTP view, with one
tool per registry operation plus `mcp_search_tools`.

django-mcpz registers tools with `server.tool(...)(func)`. We call that at run time, not at
import: the django-mcpz server is built lazily from the registry on the first request (and
rebuilt if the registry is reset), so plugins and settings decide the tools, not import order.
Each tool is registered with *dict* input/output schemas, so django-mcpz does no argument
validation of its own: the pipeline validates, which keeps bad-argument calls audited and
their errors in our field-by-field form.
"""

from __future__ import annotations

import logging
import re
import threading
from http import HTTPStatus
from typing import Annotated, Any

import msgspec
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django_mcpz.server import MCPServer as MCPZServer
from django_mcpz.server import ToolError

from ..api_keys import api_key_authenticate_cached, bearer_token
from ..contracts import MCPRequest, Principal
from ..discovery import operation_allowed
from ..limits import PARSE_ERROR, Refusal, json_too_deep, jsonrpc_error, shown, too_deep
from ..oauth import resource as oauth_resource
from ..oauth.tokens import access_token_authenticate_cached, looks_like_jwt
from ..pipeline import route
from ..registry import Registry, get_registry
from ..server import Operation
from . import search
from .tools import (
    build_request,
    error_text,
    tool_annotations,
    tool_description,
    tool_input_schema,
    tool_output_schema,
    tool_title,
)

logger = logging.getLogger(__name__)

SERVER_NAME = "askpro-control-plane"
SERVER_VERSION = "1.0.0"
SEARCH_TOOL = "mcp_search_tools"
INSTRUCTIONS = (
    "AskPro's control plane: one tool per operation of each service (database, calcom, retell, "
    "stripe, webhooks, queue, sentry, ...), named <service>_<operation>. Tools that act on one "
    "tenant take an optional `tenant` (slug) argument, required with platform keys. Failures come "
    "back as tool errors starting with an error code (validation_error, not_found, forbidden, ...) "
    f"and say what to fix. With many tools, call {SEARCH_TOOL} first to find the right one."
)
# A high surrogate escape not followed by a low one, or a low one not preceded by a high one.
_LONE_SURROGATE_ESCAPE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


def authenticate(raw: str | None, request: HttpRequest | None = None) -> Principal | None:
    """An API key, or (over HTTP) an OAuth access token issued for this endpoint."""
    if raw and request is not None and looks_like_jwt(raw):
        return access_token_authenticate_cached(raw, oauth_resource.mcp_resource(request))
    return api_key_authenticate_cached(raw)


def api_key_auth(request: HttpRequest) -> HttpResponse | None:
    """django-mcpz auth callable: the same API keys as the DRF API, and OAuth access tokens bound
    to /mcp (docs/oauth.md). Sets request.mcp_principal."""
    raw = bearer_token(request.headers.get("Authorization"))
    principal = authenticate(raw, request)
    if principal is None:
        _audit_refused(request)
        # RFC 9728: the challenge names the metadata that leads a client to the authorization server.
        challenge = oauth_resource.challenge(request, error=None if raw is None else "invalid_token")
        return HttpResponse(status=HTTPStatus.UNAUTHORIZED, headers={"WWW-Authenticate": challenge})
    request.mcp_principal = principal  # type: ignore[attr-defined]
    # Here, between authentication and django-mcpz's parse: a refused key is audited whatever
    # the body holds (as on the REST API), and an authenticated caller learns what is wrong.
    refusal = body_refusal(request.body)
    if refusal is not None:
        return JsonResponse(jsonrpc_error(PARSE_ERROR, refusal), status=refusal.status)
    return None


def _audit_refused(request: HttpRequest) -> None:
    """A request without a valid key goes through the pipeline anyway, as on the REST API, so
    that refused attempts are audited (principal "anonymous", error unauthorized): a tools/call
    under the operation it named, anything else as mcp.<method>."""
    try:
        message = msgspec.json.decode(request.body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        message = None
    method = message.get("method") if isinstance(message, dict) else None
    params = message.get("params") if isinstance(message, dict) else None
    service, operation = "mcp", str(method or "unreadable request")[:80]
    if method == "tools/call" and isinstance(params, dict):
        op = get_registry().by_tool_name().get(str(params.get("name")))
        if op is not None:
            service, operation = op.service, op.name
    refused = MCPRequest(service=service, operation=operation, params={}, principal=None, transport="mcp")
    if request.headers.get("X-Request-ID"):
        refused.request_id = request.headers["X-Request-ID"]
    route(refused)


class _Server(MCPZServer):
    def _tools_list(self, request, request_id, params):
        # Tool permissions filter the list only. A call to a tool the key may not use still goes
        # through the pipeline, which refuses it as `forbidden` and audits the attempt.
        request.mcp_listing = True
        return super()._tools_list(request, request_id, params)


def _visible(op: Operation):
    def permission(request: HttpRequest) -> bool:
        if not getattr(request, "mcp_listing", False):
            return True
        return operation_allowed(op, request.mcp_principal)

    return permission


def _caller(op: Operation):
    def call(request: HttpRequest, arguments: dict[str, Any]) -> Any:
        mcp_request = build_request(
            op,
            arguments,
            request.mcp_principal,
            request_id=request.headers.get("X-Request-ID"),
            idempotency_key=request.headers.get("Idempotency-Key"),
        )
        response = route(mcp_request)
        if not response.success:
            raise ToolError(error_text(response))
        return response.data

    call.__name__ = op.tool_name
    return call


class SearchParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    query: Annotated[
        str,
        msgspec.Meta(min_length=1, max_length=500, description="What you want to do, in plain words"),
    ]
    limit: Annotated[int, msgspec.Meta(ge=1, le=20, description="How many tools to return")] = 5


class SearchMatch(msgspec.Struct, kw_only=True):
    name: str
    score: float
    description: str
    scope: str
    tenant_scoped: bool
    annotations: dict[str, bool]
    inputSchema: dict[str, Any]  # noqa: N815 - the MCP field name
    outputSchema: dict[str, Any]  # noqa: N815


class SearchResult(msgspec.Struct, kw_only=True):
    query: str
    matches: list[SearchMatch]


def search_tools(request: HttpRequest, params: SearchParams) -> SearchResult:
    """Rank the operations this key may use for a plain-words query."""
    ops = [op for op in get_registry().operations() if operation_allowed(op, request.mcp_principal)]
    matches = [
        SearchMatch(
            name=hit.op.tool_name,
            score=round(hit.score, 3),
            description=tool_description(hit.op),
            scope=hit.op.scope,
            tenant_scoped=hit.op.tenant_scoped,
            annotations=tool_annotations(hit.op),
            inputSchema=tool_input_schema(hit.op),
            outputSchema=tool_output_schema(hit.op),
        )
        for hit in search.rank(params.query, ops, limit=params.limit)
    ]
    return SearchResult(query=params.query, matches=matches)


def build_server(registry: Registry) -> MCPZServer:
    server = _Server(
        name=SERVER_NAME,
        version=SERVER_VERSION,
        title="AskPro control plane",
        instructions=INSTRUCTIONS,
        auth=api_key_auth,
    )
    server.tool(
        name=SEARCH_TOOL,
        title="Search tools",
        description=(
            "Find the tools for a task: give a plain-words query (e.g. 'cancel an appointment', "
            "'why are calls failing', 'refund') and get the best-matching tools, ranked, with their "
            "input and output schemas. Only tools this key may call are returned."
        ),
        read_only=True,
        destructive=False,
        idempotent=True,
        open_world=False,
    )(search_tools)
    for op in registry.operations():
        try:
            input_schema, output_schema = tool_input_schema(op), tool_output_schema(op)
        except Exception:
            # One broken declaration (the system check names it too) must not take every
            # other tool down with it.
            logger.exception("MCP tool %s left out: its schema cannot be generated", op.tool_name)
            continue
        annotations = tool_annotations(op)
        server.tool(
            name=op.tool_name,
            title=tool_title(op),
            description=tool_description(op),
            input_schema=input_schema,
            output_schema=output_schema,
            read_only=annotations["readOnlyHint"],
            destructive=annotations["destructiveHint"],
            idempotent=annotations["idempotentHint"],
            open_world=annotations["openWorldHint"],
            permission=_visible(op),
        )(_caller(op))
    return server


_lock = threading.Lock()
_built: tuple[Registry, MCPZServer] | None = None


def get_server() -> MCPZServer:
    """The django-mcpz server for the current registry, built once per registry."""
    global _built
    registry = get_registry()
    built = _built
    if built is None or built[0] is not registry:
        with _lock:
            if _built is None or _built[0] is not registry:
                _built = (registry, build_server(registry))
            built = _built
    return built[1]


def body_refusal(body: bytes) -> Refusal | None:
    """What django-mcpz's parser cannot be given, or answers only with a bare "Invalid JSON":
    bytes that are not UTF-8 (msgspec raises UnicodeDecodeError there, not a DecodeError),
    nesting its recursion would choke on, and text msgspec refuses (numbers out of range,
    lone surrogate escapes), said plainly. The middleware bounds size and depth for HTTP
    already; stdio comes through here alone."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Refusal("body", "not_utf8", f"body: not valid UTF-8 (byte {exc.start})")
    depth = settings.REQUEST_MAX_JSON_DEPTH
    if json_too_deep(body, depth):
        return too_deep(depth)
    try:
        # A second decode of a small body costs microseconds; django-mcpz decodes it again.
        msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        if _LONE_SURROGATE_ESCAPE.search(body):
            message = (
                "body: a string holds a lone surrogate escape (\\ud800-\\udfff), which is not valid Unicode"
            )
            return Refusal("body", "lone_surrogate", message)
        return Refusal("body", "invalid_json", f"body: not valid JSON ({shown(str(exc), 200)})")
    return None


@csrf_exempt
@transaction.non_atomic_requests
def mcp_view(request: HttpRequest) -> HttpResponse:
    # Never inside a request-wide transaction: django-mcpz rolls a failing tool back to a
    # savepoint when one is open, and that would take the failed call's audit row with it.
    # The pipeline owns the operation's transaction instead.
    return get_server()(request)
