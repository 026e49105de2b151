"""MCP tool definitions derived from the orchestrator's registry, and the one way a tool call
reaches an operation: an MCPRequest through mcp_core.pipeline.route."""

from __future__ import annotations

import copy
import json
from typing import Any

from ..contracts import MCPRequest, MCPResponse, Principal
from ..discovery import params_schema, result_schema
from ..server import Operation

TENANT_ARGUMENT = "tenant"
TENANT_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": 100,
    "description": (
        "Tenant slug (or id) to act for. Platform keys must name one; a tenant-bound key acts "
        "on its own tenant and may leave this out."
    ),
}


class ToolDefinitionError(Exception):
    pass


def tool_input_schema(op: Operation) -> dict[str, Any]:
    """The params schema, plus the optional `tenant` argument for tenant-scoped operations."""
    schema = copy.deepcopy(params_schema(op))
    schema["additionalProperties"] = False
    if op.tenant_scoped:
        properties = schema.setdefault("properties", {})
        if TENANT_ARGUMENT in properties:
            raise ToolDefinitionError(
                f"{op.service}.{op.name}: a tenant-scoped operation cannot have a param named "
                f"{TENANT_ARGUMENT!r}; the MCP tool uses it to name the tenant"
            )
        properties[TENANT_ARGUMENT] = dict(TENANT_SCHEMA)
    return schema


def tool_output_schema(op: Operation) -> dict[str, Any]:
    return copy.deepcopy(result_schema(op))


def tool_description(op: Operation) -> str:
    """The operation's description plus what a model needs to call it right: the scope it
    needs, whether it touches the outside world and whether it names a tenant."""
    notes = [f"Needs scope {op.scope}."]
    if op.annotations.read_only:
        notes.append("Read-only.")
    elif op.annotations.destructive:
        notes.append("Destructive: changes or removes data that cannot simply be restored.")
    if op.annotations.open_world:
        notes.append("Calls an external service.")
    if op.platform_only:
        notes.append("Platform keys only.")
    if op.tenant_scoped:
        notes.append("Acts on one tenant (platform keys pass `tenant`).")
    return f"{op.description}\n\n{' '.join(notes)}"


def tool_annotations(op: Operation) -> dict[str, bool]:
    a = op.annotations
    return {
        "readOnlyHint": a.read_only,
        # The MCP defaults are destructive/open-world, so always say it explicitly.
        "destructiveHint": (not a.read_only) and a.destructive,
        "idempotentHint": a.idempotent,
        "openWorldHint": a.open_world,
    }


def tool_title(op: Operation) -> str:
    return f"{op.service.title()}: {op.name.replace('_', ' ')}"


def build_request(
    op: Operation,
    arguments: dict[str, Any],
    principal: Principal | None,
    *,
    request_id: str | None = None,
    idempotency_key: str | None = None,
) -> MCPRequest:
    """Split the tool arguments into the operation's params and the tenant, if the op has one."""
    params = dict(arguments)
    tenant = params.pop(TENANT_ARGUMENT, None) if op.tenant_scoped else None
    request = MCPRequest(
        service=op.service,
        operation=op.name,
        params=params,
        principal=principal,
        tenant=tenant,
        idempotency_key=idempotency_key,
        transport="mcp",
    )
    if request_id:
        request.request_id = request_id
    return request


_HINTS = {
    "validation_error": "Fix the named argument and call again.",
    "not_found": "Check the identifier; search or list first to find a valid one.",
    "unauthorized": "The API key is missing or invalid.",
    "forbidden": "This key may not do this; do not retry with the same key.",
    "rate_limited": "Wait before retrying.",
    "circuit_open": "The service is failing right now; wait before retrying.",
    "timeout": "The call ran out of time; retry later or narrow the request.",
    "upstream_error": "The external service failed; retry later.",
    "not_configured": "The service has no credentials configured; an operator must set them up.",
    "conflict": "The record changed or already exists; re-read it and decide again.",
    "internal_error": "An unexpected error; report the request id to an operator.",
}


def error_text(response: MCPResponse) -> str:
    """The text a model sees for a failed call: the code, the message, the details (which
    field, which value) and what to do next."""
    error = response.error or {}
    code = error.get("code", "internal_error")
    lines = [f"{code}: {error.get('message', '')}"]
    details = error.get("details") or {}
    if details:
        lines.append(f"details: {json.dumps(details, sort_keys=True, default=str)}")
    hint = _HINTS.get(code)
    if hint:
        lines.append(hint)
    request_id = response.metadata.get("request_id")
    if request_id:
        lines.append(f"request_id: {request_id}")
    return "\n".join(lines)
