"""msgspec is the one schema library: params and results are msgspec Structs, JSON Schema is
generated from them, and validation errors are turned into field-by-field details."""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from typing import Any

import msgspec
import msgspec.inspect
from django.conf import settings

from .limits import INT32_MAX as INT32_MAX  # re-exported for the servers' params
from .limits import INT64_MAX, INT64_MIN, shown, string_problem

# Upper bounds for integer params that meet a column: PostgreSQL integer (32-bit, e.g. Cal.com
# ids) and bigint (primary keys). Every integer param declares its maximum.
BIGINT_MAX = INT64_MAX


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


def _raw_problem(raw: Any) -> tuple[str, str] | None:
    """(path, problem) of the first value no operation may receive, whatever its schema says:
    text PostgreSQL or UTF-8 cannot hold, strings, arrays and objects over the global limits,
    nesting deeper than MCP_PARAMS_MAX_DEPTH, integers beyond a bigint column, non-finite
    numbers. Iterative, so hostile nesting cannot exhaust the stack."""
    max_depth = settings.MCP_PARAMS_MAX_DEPTH
    max_chars = settings.MCP_PARAMS_MAX_STRING_CHARS
    max_items = settings.MCP_PARAMS_MAX_ITEMS
    stack: list[tuple[Any, str, int]] = [(raw, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            problem = string_problem(value)
            if problem is None and len(value) > max_chars:
                problem = f"is longer than {max_chars} characters"
            if problem is not None:
                return path, problem
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int):
            if not INT64_MIN <= value <= INT64_MAX:
                return path, "is out of range: whole numbers must fit a 64-bit integer (at most 2^63 - 1)"
        elif isinstance(value, float):
            if not math.isfinite(value):
                return path, "must be a finite number"
        elif isinstance(value, dict | list | tuple):
            if depth >= max_depth:
                return path, f"nests deeper than {max_depth} levels"
            if len(value) > max_items:
                return path, f"has more than {max_items} items"
            if isinstance(value, dict):
                for key, item in value.items():
                    name = str(key)
                    sub = f"{path}.{name}" if path else name
                    problem = string_problem(name)
                    if problem is None and len(name) > max_chars:
                        problem = f"is longer than {max_chars} characters"
                    if problem is not None:
                        return sub, f"name {problem}"
                    stack.append((item, sub, depth + 1))
            else:
                for index, item in enumerate(value):
                    stack.append((item, f"{path}[{index}]", depth + 1))
    return None


@functools.lru_cache(maxsize=512)
def _holds_dates(struct_type: type) -> bool:
    """Whether any field of the Struct (nested Structs, lists, dicts included) can hold a date."""

    def walk(info: Any, seen: frozenset) -> bool:
        if isinstance(info, msgspec.inspect.Metadata):
            return walk(info.type, seen)
        if isinstance(info, msgspec.inspect.DateType | msgspec.inspect.DateTimeType):
            return True
        if isinstance(info, msgspec.inspect.StructType):
            if info.cls in seen:
                return False
            return any(walk(f.type, seen | {info.cls}) for f in info.fields)
        if isinstance(info, msgspec.inspect.UnionType):
            return any(walk(member, seen) for member in info.types)
        if isinstance(info, msgspec.inspect.DictType):
            return walk(info.key_type, seen) or walk(info.value_type, seen)
        item = getattr(info, "item_type", None)
        if item is not None:
            return walk(item, seen)
        return any(walk(member, seen) for member in getattr(info, "item_types", ()))

    return walk(msgspec.inspect.type_info(struct_type), frozenset())


def _date_problem(value: Any, path: str = "") -> tuple[str, str] | None:
    """(path, problem) of the first date outside MCP_PARAMS_MIN_YEAR..MCP_PARAMS_MAX_YEAR.
    Operations compute with dates (ranges, + 1 day, time zones): year 1 or 9999 would overflow
    there or be sent to an upstream, so they are refused here, naming the field."""
    if isinstance(value, dt.date):
        low, high = settings.MCP_PARAMS_MIN_YEAR, settings.MCP_PARAMS_MAX_YEAR
        if not low <= value.year <= high:
            kind = "date-time" if isinstance(value, dt.datetime) else "date"
            return path, f"Expected a {kind} in the years {low} to {high}"
        return None
    if isinstance(value, msgspec.Struct):
        names = value.__struct_encode_fields__
        for attr, name in zip(value.__struct_fields__, names, strict=True):
            found = _date_problem(getattr(value, attr), f"{path}.{name}" if path else name)
            if found:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _date_problem(item, f"{path}[{index}]")
            if found:
                return found
    elif isinstance(value, dict):
        for key, item in value.items():
            found = _date_problem(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    return None


def _refuse(path: str, problem: str) -> msgspec.ValidationError:
    """A ValidationError in msgspec's own form, so describe_validation_error names the field."""
    problem = problem[:1].upper() + problem[1:]
    if not path:
        return msgspec.ValidationError(problem)
    where = shown(path, 200).replace("`", "'")
    return msgspec.ValidationError(f"{problem} - at `$.{where}`")


def decode_params(struct_type: type, raw: Any) -> Any:
    """Validate raw (JSON-shaped) params into the Struct, or raise msgspec.ValidationError."""
    if raw is None:
        raw = {}
    # Checked before msgspec sees the value: PostgreSQL text cannot hold NUL, an answer cannot
    # hold a lone surrogate, and nothing should reach a query or an upstream unbounded.
    found = _raw_problem(raw)
    if found is not None:
        raise _refuse(*found)
    params = msgspec.convert(raw, struct_type, strict=True)
    if _holds_dates(struct_type):
        found = _date_problem(params)
        if found is not None:
            raise _refuse(*found)
    return params


def to_builtins(value: Any) -> Any:
    return msgspec.to_builtins(value)


# --- JSON Schema params (operations derived at run time, e.g. federated remote tools) ----------


def jsonschema_validator(schema: dict[str, Any]) -> Any:
    """A validator for a (pinned) JSON Schema: draft 2020-12 unless it names its own, and no
    $ref that leaves the document (nothing is fetched)."""
    import jsonschema.validators

    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema)


def json_type(value: Any) -> str:
    """The JSON Schema type name of a decoded JSON value (bool is not an integer here)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def schema_violation(validator: Any, value: Any) -> msgspec.ValidationError | None:
    """The first violation of a JSON Schema, worded as msgspec words its own (so that
    describe_validation_error names the field and the problem), or None."""
    import jsonschema.exceptions
    from referencing.exceptions import Unresolvable

    try:
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    except Unresolvable:
        return msgspec.ValidationError("Invalid schema: a $ref does not resolve inside the schema")
    if error is None:
        return None
    path = ".".join(str(part) for part in error.absolute_path)
    if error.validator == "required":
        missing = next((n for n in error.validator_value if n not in (error.instance or {})), "")
        text = f"Object missing required field `{missing}`"
        return msgspec.ValidationError(f"{text} - at `$.{path}`" if path else text)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set((error.schema or {}).get("properties", {}))
        extra = next((n for n in error.instance if n not in known), "")
        text = f"Object contains unknown field `{extra}`"
        return msgspec.ValidationError(f"{text} - at `$.{path}`" if path else text)
    if error.validator == "type":
        expected = error.validator_value
        expected = " | ".join(expected) if isinstance(expected, list) else expected
        return _refuse(path, f"Expected `{expected}`, got `{json_type(error.instance)}`")
    return _refuse(path, f"Invalid value: {shown(error.message, 200)}")


def json_params_decoder(schema: dict[str, Any]) -> Any:
    """decode(raw) -> dict for params described by a JSON Schema (an object schema): the same
    global limits as Struct params first, then the schema; msgspec.ValidationError otherwise."""
    validator = jsonschema_validator(schema)

    def decode(raw: Any) -> dict[str, Any]:
        if raw is None:
            raw = {}
        found = _raw_problem(raw)
        if found is not None:
            raise _refuse(*found)
        if not isinstance(raw, dict):
            raise msgspec.ValidationError(f"Expected `object`, got `{json_type(raw)}`")
        violation = schema_violation(validator, raw)
        if violation is not None:
            raise violation
        return raw

    return decode
