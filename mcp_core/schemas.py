"""msgspec is the one schema library: params and results are msgspec Structs, JSON Schema is
generated from them, and validation errors are turned into field-by-field details."""

from __future__ import annotations

import re
from typing import Any

import msgspec


class Params(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base for every operation's params: unknown fields are an error, not silently ignored."""


class Result(msgspec.Struct, kw_only=True):
    """Base for every operation's result."""


class NoParams(Params):
    pass


def json_schema(struct_type: type) -> dict[str, Any]:
    """JSON Schema for a Struct with the top-level $ref inlined (MCP wants properties at the root)."""
    schema = msgspec.json.schema(struct_type)
    ref = schema.get("$ref")
    defs = schema.get("$defs", {})
    if not (isinstance(ref, str) and ref.startswith("#/$defs/")):
        return schema
    name = ref.removeprefix("#/$defs/")
    root = dict(defs[name])
    root.pop("title", None)
    rest = {key: value for key, value in defs.items() if key != name}
    if rest:
        root["$defs"] = rest
    root.setdefault("properties", {})
    if issubclass(struct_type, Params):
        root["additionalProperties"] = False
    return root


_PATH = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]+)`")
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<field>[^`]+)`")


def describe_validation_error(exc: msgspec.ValidationError) -> dict[str, Any]:
    """Turn msgspec's message into {field, problem, message}, naming the field."""
    text = str(exc)
    path = ""
    match = _PATH.search(text)
    if match:
        path = match.group("path")
        text = text[: match.start()]
    for pattern, problem in ((_MISSING, "missing"), (_UNKNOWN, "unknown")):
        found = pattern.search(text)
        if found:
            name = found.group("field")
            field_path = f"{path}.{name}" if path else name
            message = "is required" if problem == "missing" else "is not a known parameter"
            return {"field": field_path, "problem": problem, "message": f"{field_path}: {message}"}
    if text.startswith("Expected") and ("got" in text):
        problem = "wrong_type"
    elif text.startswith(("Expected", "Invalid")):
        problem = "invalid_value"
    else:
        problem = "invalid"
    field_path = path or "params"
    return {"field": field_path, "problem": problem, "message": f"{field_path}: {text}"}


def _nul_path(value: Any, path: str = "") -> str | None:
    """The path of the first string (or key) holding a NUL character, if any."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return sub
            found = _nul_path(item, sub)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _nul_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def decode_params(struct_type: type, raw: Any) -> Any:
    """Validate raw (JSON-shaped) params into the Struct, or raise msgspec.ValidationError."""
    if raw is None:
        raw = {}
    # PostgreSQL text cannot hold NUL: refuse it here, naming the field, rather than let a
    # query fail with an internal error later.
    where = _nul_path(raw)
    if where is not None:
        shown = where.replace("\x00", "\\0")
        raise msgspec.ValidationError(f"Contains a NUL character, which is not allowed - at `$.{shown}`")
    return msgspec.convert(raw, struct_type, strict=True)


def to_builtins(value: Any) -> Any:
    return msgspec.to_builtins(value)
