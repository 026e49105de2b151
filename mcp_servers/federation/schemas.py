"""The federation server's own operations, and what makes a remote tool definition acceptable."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any

import msgspec

from mcp_core.mcp.tools import TENANT_ARGUMENT
from mcp_core.schemas import Params, Result

Slug = Annotated[str, msgspec.Meta(min_length=1, max_length=30, pattern=r"^[a-z][a-z0-9]*$")]

# A remote tool's result when it declares no output schema: its content blocks.
CONTENT_RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "content": {
            "type": "array",
            "items": {"type": "object"},
            "description": "The remote tool's content blocks (text, image, ...)",
        }
    },
    "required": ["content"],
}

MAX_NAME = 128
MAX_DESCRIPTION = 4000
MAX_SCHEMA_BYTES = 64 * 1024
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_.\-/]{1,128}$")  # SEP-986, plus "/" that some servers use
_KEPT = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")


class ServerParams(Params):
    server: Slug


class ServerSummary(msgspec.Struct, kw_only=True):
    slug: str
    service: str
    title: str
    url_host: str
    era: str
    enabled: bool
    all_tenants: bool
    approved_tools: int
    pending_tools: int
    last_sync_at: str | None
    last_sync_error: str


class ServerList(Result):
    servers: list[ServerSummary]


class ToolSummary(msgspec.Struct, kw_only=True):
    name: str
    operation: str
    tool_name: str
    version: int
    status: str
    digest: str
    removed: bool
    problem: str


class ToolList(Result):
    server: str
    tools: list[ToolSummary]


class SyncResult(Result):
    server: str
    fetched: int
    unchanged: int
    new_versions: int
    invalid: int
    removed: int


def canonical(tool: dict[str, Any]) -> dict[str, Any]:
    """The parts of a tool definition that are pinned (anything else a server sends is ignored)."""
    return {key: tool[key] for key in _KEPT if tool.get(key) is not None}


def digest(definition: dict[str, Any]) -> str:
    text = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def operation_name(tool_name: str) -> str:
    """snake_case name for the operation: `Get-Forecast.v2` -> `get_forecast_v2`."""
    name = re.sub(r"[^a-z0-9]+", "_", tool_name.lower()).strip("_") or "tool"
    return f"t_{name}" if name[0].isdigit() else name


def definition_problem(definition: dict[str, Any]) -> str | None:
    """Why a remote tool definition cannot become an operation, or None."""
    import jsonschema.exceptions
    import jsonschema.validators

    name = definition.get("name")
    if not isinstance(name, str) or not _TOOL_NAME.match(name):
        return "name: must be 1-128 characters of letters, digits, _ - . /"
    description = definition.get("description", "")
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        return f"description: must be text of at most {MAX_DESCRIPTION} characters"
    for key in ("inputSchema", "outputSchema"):
        schema = definition.get(key)
        if schema is None and key == "outputSchema":
            continue
        if not isinstance(schema, dict) or schema.get("type") != "object":
            return f"{key}: must be a JSON Schema of type object"
        if len(json.dumps(schema)) > MAX_SCHEMA_BYTES:
            return f"{key}: larger than {MAX_SCHEMA_BYTES} bytes"
        try:
            cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
            cls.check_schema(schema)
        except jsonschema.exceptions.SchemaError as exc:
            return f"{key}: not a valid JSON Schema ({exc.message[:200]})"
    if TENANT_ARGUMENT in (definition["inputSchema"].get("properties") or {}):
        return f"inputSchema: a parameter named {TENANT_ARGUMENT!r} is taken (it names the tenant here)"
    return None
