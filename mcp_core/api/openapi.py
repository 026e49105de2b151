"""The OpenAPI schema shows each operation: a drf-spectacular postprocessing hook that adds one
path per registered operation (`POST /api/v1/mcp/<service>/<operation>`, served by
OperationView), whose request body is the operation's params schema and whose 200 answer
carries its result schema.

The schemas are the ones discovery gives the MCP tool list (mcp_core.discovery), so the
OpenAPI document, /services and tools/list always agree with the declarations. The document is
OpenAPI 3.1, whose schema objects are JSON Schema 2020-12: what msgspec generates, unchanged
except that its local `$defs` become shared components.
"""

from __future__ import annotations

import copy
from typing import Any

from django.conf import settings
from django.urls import reverse

from ..contracts import HTTP_STATUS_FOR_ERROR, ErrorCode
from ..discovery import params_schema, result_schema
from ..registry import get_registry
from ..server import Operation

COMPONENTS = "#/components/schemas/"
BEARER = "bearerAuth"


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.replace("-", "_").split("_"))


def _rewrite_refs(node: Any, names: dict[str, str]) -> Any:
    """A copy of a schema with `#/$defs/X` pointing at the component X was renamed to."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/"):
                out[key] = COMPONENTS + names[value.removeprefix("#/$defs/")]
            else:
                out[key] = _rewrite_refs(value, names)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(item, names) for item in node]
    return node


def _add_component(schemas: dict[str, Any], schema: dict[str, Any], *candidates: str) -> str:
    """Register `schema` under the first candidate name that is free or holds the same schema."""
    for name in candidates:
        if name not in schemas or schemas[name] == schema:
            schemas[name] = schema
            return name
    index = 2
    while f"{candidates[-1]}{index}" in schemas and schemas[f"{candidates[-1]}{index}"] != schema:
        index += 1
    schemas[f"{candidates[-1]}{index}"] = schema
    return f"{candidates[-1]}{index}"


def _component_for(schemas: dict[str, Any], op: Operation, root: dict[str, Any], kind: str) -> str:
    """Add an operation's params or result schema (and its $defs) as components; its name.

    Nested definitions are shared per service (`DatabaseColumnInfo`); one that would clash
    with a different schema of the same name is named per operation instead.
    """
    root = copy.deepcopy(root)
    defs = root.pop("$defs", {})
    service, prefix = _camel(op.service), _camel(op.service) + _camel(op.name)
    for naming in (service, prefix + kind):
        names = {def_name: f"{naming}{def_name}" for def_name in defs}
        bodies = {names[def_name]: _rewrite_refs(body, names) for def_name, body in defs.items()}
        if all(schemas.get(name, body) == body for name, body in bodies.items()):
            break
    else:
        raise ValueError(f"{op.tool_name}: its {kind.lower()} schema's definitions clash with others")
    schemas.update(bodies)
    return _add_component(schemas, _rewrite_refs(root, names), f"{prefix}{kind}")


def _shared_components(schemas: dict[str, Any]) -> None:
    schemas["MCPMetadata"] = {
        "type": "object",
        "description": "About the call: which operation, for which tenant, how long it took.",
        "properties": {
            "service": {"type": "string"},
            "operation": {"type": "string"},
            "duration_ms": {"type": "number"},
            "tenant_id": {"type": ["integer", "null"]},
            "request_id": {"type": "string"},
        },
    }
    schemas["MCPError"] = {
        "type": "object",
        "required": ["code", "message", "details"],
        "properties": {
            "code": {"type": "string", "enum": [str(code) for code in ErrorCode]},
            "message": {"type": "string", "description": "What went wrong and what to do; names the field"},
            "details": {
                "type": "object",
                "description": "field and problem for bad input; retry_after (seconds) when limited",
            },
        },
    }
    schemas["MCPErrorResponse"] = {
        "type": "object",
        "required": ["success", "data", "error", "metadata"],
        "properties": {
            "success": {"const": False},
            "data": {"type": "null"},
            "error": {"$ref": COMPONENTS + "MCPError"},
            "metadata": {"$ref": COMPONENTS + "MCPMetadata"},
        },
    }


def _error_statuses(op: Operation) -> dict[int, list[str]]:
    """Error codes by HTTP status, for the errors this operation can answer with."""
    upstream_only = {ErrorCode.UPSTREAM_ERROR, ErrorCode.CIRCUIT_OPEN, ErrorCode.NOT_CONFIGURED}
    statuses: dict[int, list[str]] = {}
    for code, status in HTTP_STATUS_FOR_ERROR.items():
        if code in upstream_only and not op.annotations.open_world:
            continue  # breakers and credentials concern operations that call an upstream
        statuses.setdefault(status, []).append(str(code))
    return dict(sorted(statuses.items()))


def _describe(op: Operation) -> str:
    facts = [f"Scope: `{op.scope}`."]
    if op.platform_only:
        facts.append("Platform keys only.")
    if op.tenant_scoped:
        facts.append("Acts for one tenant: a tenant key's own, or `?tenant=` with a platform key.")
    kinds = [
        label
        for flag, label in (
            (op.annotations.read_only, "read-only"),
            (op.annotations.destructive, "destructive"),
            (op.annotations.idempotent, "idempotent"),
            (op.annotations.open_world, "calls an upstream service"),
        )
        if flag
    ]
    if kinds:
        facts.append(f"{', '.join(kinds).capitalize()}.")
    timeout = op.timeout if op.timeout is not None else settings.MCP_DEFAULT_TIMEOUT
    facts.append(f"Times out after {timeout:g} s. MCP tool name: `{op.tool_name}`.")
    return f"{op.description}\n\n{' '.join(facts)}"


def _path_item(op: Operation, params_name: str, response_name: str) -> dict[str, Any]:
    params_root = params_schema(op)
    parameters: list[dict[str, Any]] = []
    if op.tenant_scoped:
        parameters.append(
            {
                "name": "tenant",
                "in": "query",
                "required": False,
                "description": "Tenant slug or id. Platform keys only (and then required); "
                "a tenant key always acts for its own tenant.",
                "schema": {"type": "string"},
            }
        )
    parameters += [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "Your key for a call that must not be done twice: recorded with the call, "
            "and given to the upstream by operations that write there.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        },
        {
            "name": "X-Request-ID",
            "in": "header",
            "required": False,
            "description": "Your id for the call (letters, digits, '.', '_', '-'); echoed in metadata.",
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
        },
    ]
    responses: dict[str, Any] = {
        "200": {
            "description": "The operation's result (success: true, data holds the result)",
            "content": {"application/json": {"schema": {"$ref": COMPONENTS + response_name}}},
        }
    }
    for status, codes in _error_statuses(op).items():
        response: dict[str, Any] = {
            "description": f"success: false, error.code {' or '.join(codes)}",
            "content": {"application/json": {"schema": {"$ref": COMPONENTS + "MCPErrorResponse"}}},
        }
        if status in (429, 503):
            response["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before trying again",
                    "schema": {"type": "integer"},
                }
            }
        responses[str(status)] = response
    return {
        "post": {
            "operationId": op.tool_name,
            "summary": op.description.split("\n")[0].strip().rstrip(".")[:120],
            "description": _describe(op),
            "tags": [op.service],
            "parameters": parameters,
            "requestBody": {
                "required": bool(params_root.get("required")),
                "content": {"application/json": {"schema": {"$ref": COMPONENTS + params_name}}},
            },
            "responses": responses,
        }
    }


def add_operation_paths(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: one path per registered operation."""
    registry = get_registry()
    components = result.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    components.setdefault("securitySchemes", {})[BEARER] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An AskPro API key: `Authorization: Bearer <key>`",
    }
    # Every endpoint of the API takes the key the same way.
    result.setdefault("security", [{BEARER: []}])
    _shared_components(schemas)
    paths = result.setdefault("paths", {})
    for op in registry.operations():
        params_name = _component_for(schemas, op, params_schema(op), "Params")
        result_name = _component_for(schemas, op, result_schema(op), "Result")
        response_name = _add_component(
            schemas,
            {
                "type": "object",
                "required": ["success", "data", "error", "metadata"],
                "properties": {
                    "success": {"const": True},
                    "data": {"$ref": COMPONENTS + result_name},
                    "error": {"type": "null"},
                    "metadata": {"$ref": COMPONENTS + "MCPMetadata"},
                },
            },
            f"{_camel(op.service)}{_camel(op.name)}Response",
        )
        url = reverse("mcp_api:operation", kwargs={"service": op.service, "operation": op.name})
        paths[url] = _path_item(op, params_name, response_name)
    known = {tag.get("name") for tag in result.get("tags", [])}
    result.setdefault("tags", []).extend(
        {"name": name, "description": server.description}
        for name, server in sorted(registry.servers.items())
        if name not in known
    )
    return result
