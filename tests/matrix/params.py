"""Params derived from an operation's JSON Schema, for the generated test matrices.

`valid_params` builds the smallest params the schema accepts (required fields only, with
values inside their bounds); `bad_params_cases` builds, per property, the inputs a careful
validator must refuse. Both read only the JSON Schema, so a new operation is covered the
moment it is registered.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from mcp_core.discovery import params_schema
from mcp_core.schemas import json_type
from mcp_core.server import Operation

# hint(name, schema) -> a value to use for that property, or NOTHING to fall back to the default.
NOTHING = object()
Hint = Callable[[str, dict[str, Any]], Any]

# A week ahead at 10:00 UTC: operations that book or schedule refuse times in the past.
_NEXT_WEEK = (dt.datetime.now(dt.UTC) + dt.timedelta(days=7)).replace(
    hour=10, minute=0, second=0, microsecond=0
)
_FORMAT_SAMPLES = {
    "date-time": _NEXT_WEEK.strftime("%Y-%m-%dT%H:%M:%SZ"),
    "date": _NEXT_WEEK.date().isoformat(),
    "time": "10:00:00",
    "uuid": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
    "email": "someone@example.com",
    "uri": "https://example.com/",
    "duration": "P1D",
}


def resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """Follow a local $ref (msgspec puts nested Structs and Enums in $defs)."""
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = root.get("$defs", {})[name]
    return schema


def branches(schema: dict[str, Any], root: dict[str, Any]) -> list[dict[str, Any]]:
    """The alternatives of a property: anyOf/oneOf members, or the schema itself."""
    schema = resolve(schema, root)
    members = schema.get("anyOf") or schema.get("oneOf")
    if members:
        return [resolve(member, root) for member in members]
    return [schema]


def non_null(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any] | None:
    """The first alternative that is not null (None if the property can only be null)."""
    for branch in branches(schema, root):
        if branch.get("type") != "null":
            return branch
    return None


def json_types(schema: dict[str, Any], root: dict[str, Any]) -> set[str]:
    """The JSON types a property accepts; {"any"} when the schema does not say."""
    found: set[str] = set()
    for branch in branches(schema, root):
        if "enum" in branch:
            found |= {json_type(value) for value in branch["enum"]}
        elif "const" in branch:
            found.add(json_type(branch["const"]))
        elif "type" in branch:
            kinds = branch["type"] if isinstance(branch["type"], list) else [branch["type"]]
            found |= set(kinds)
        else:
            return {"any"}
    if "integer" in found:
        found.add("integer")
    return found


def sample(schema: dict[str, Any], root: dict[str, Any], *, name: str = "", hint: Hint | None = None) -> Any:
    """A valid value for one property schema."""
    if hint is not None:
        hinted = hint(name, schema)
        if hinted is not NOTHING:
            return hinted
    branch = non_null(schema, root)
    if branch is None:
        return None
    if "enum" in branch:
        return branch["enum"][0]
    if "const" in branch:
        return branch["const"]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    kind = branch.get("type")
    if isinstance(kind, list):
        kind = next(k for k in kind if k != "null")
    if kind == "integer":
        low = branch.get(
            "minimum", branch.get("exclusiveMinimum", 0) + 1 if "exclusiveMinimum" in branch else 1
        )
        high = branch.get("maximum", branch.get("exclusiveMaximum", low + 2) - 1)
        return max(low, min(high, 1))
    if kind == "number":
        low = branch.get("minimum", 1)
        high = branch.get("maximum", low + 1)
        return float(max(low, min(high, 1)))
    if kind == "boolean":
        return False
    if kind == "string":
        fmt = branch.get("format")
        if fmt in _FORMAT_SAMPLES:
            return _FORMAT_SAMPLES[fmt]
        if "pattern" in branch:
            return _string_for_pattern(branch)
        return _sized_string(branch, "sample")
    if kind == "array":
        count = max(1, branch.get("minItems", 1))
        item = branch.get("items", {})
        return [sample(item, root) for _ in range(count)] if item else []
    if kind == "object":
        return build_object(branch, root)
    return "sample"


def _sized_string(schema: dict[str, Any], base: str) -> str:
    low = schema.get("minLength", 0)
    high = schema.get("maxLength", max(low, len(base)))
    text = base if len(base) >= low else base + "x" * (low - len(base))
    return text[:high]


def _string_for_pattern(schema: dict[str, Any]) -> str:
    pattern = schema["pattern"]
    candidates = (
        "sample",
        "abc",
        "a1",
        "A",
        "1",
        "+4930123456",
        "someone@example.com",
        "https://example.com/",
        "/admin/",
        "2026-01-15",
        "2026-01-15T10:00:00Z",
        "10:00",
        "7c9e6679-7425-40de-944b-e07fc1f90ae7",
        "sample-slug",
        "Europe/Berlin",
        "EUR",
        "x" * 8,
        # Stripe object ids (prefix_id)
        "in_sample",
        "ch_sample",
        "pi_sample",
        "sub_sample",
        "price_sample",
        # Twilio content template ids (HX + 32 hex), a month (YYYY-MM)
        "HX" + "0" * 32,
        "2026-01",
    )
    for candidate in candidates:
        if re.search(pattern, candidate):
            return candidate
    raise AssertionError(f"no sample string matches pattern {pattern!r}; teach tests/matrix/params.py")


def build_object(schema: dict[str, Any], root: dict[str, Any], *, hint: Hint | None = None) -> dict[str, Any]:
    """Required properties always, optional ones only where the hint supplies a value."""
    schema = resolve(schema, root)
    required = set(schema.get("required", []))
    result: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        if name in required:
            result[name] = sample(prop, root, name=name, hint=hint)
        elif hint is not None:
            hinted = hint(name, prop)
            if hinted is not NOTHING:
                result[name] = hinted
    return result


def valid_params(op: Operation, *, hint: Hint | None = None) -> dict[str, Any]:
    schema = params_schema(op)
    return build_object(schema, schema, hint=hint)


@dataclass(frozen=True)
class BadCase:
    """Params that must be refused with validation_error naming `field`."""

    label: str
    params: Any
    field: str


_WRONG_TYPE_CANDIDATES: tuple[tuple[str, Any], ...] = (
    ("string", "not-the-right-type"),
    ("integer", 12345),
    ("boolean", True),
    ("array", [1, 2]),
    ("object", {"nested": 1}),
)


def wrong_type_value(schema: dict[str, Any], root: dict[str, Any]) -> Any:
    accepted = json_types(schema, root)
    if "any" in accepted:
        return NOTHING
    for kind, value in _WRONG_TYPE_CANDIDATES:
        if kind in accepted or (kind == "integer" and "number" in accepted):
            continue
        # Enum/const members are values, not types: a string outside a string enum is
        # an out-of-range case, handled there.
        return value
    return NOTHING


def _out_of_range_values(schema: dict[str, Any], root: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    branch = non_null(schema, root)
    if branch is None:
        return
    if "enum" in branch:
        values = branch["enum"]
        if all(isinstance(v, str) for v in values):
            yield "not in enum", "zz-not-an-option"
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            yield "not in enum", max(values) + 1000
        return
    kind = branch.get("type")
    if kind in ("integer", "number"):
        if "minimum" in branch:
            yield "below minimum", branch["minimum"] - 1
        if "exclusiveMinimum" in branch:
            yield "at exclusiveMinimum", branch["exclusiveMinimum"]
        if "maximum" in branch:
            yield "above maximum", branch["maximum"] + 1
        if "exclusiveMaximum" in branch:
            yield "at exclusiveMaximum", branch["exclusiveMaximum"]
    elif kind == "string":
        # PostgreSQL text cannot hold NUL: it must be refused as bad input, not crash a query.
        nul = ("\x00" + "x" * max(0, branch.get("minLength", 0) - 1))[: branch.get("maxLength", 100)]
        yield "with a NUL character", nul
        if branch.get("minLength", 0) > 0:
            yield "shorter than minLength", "x" * (branch["minLength"] - 1)
        if "maxLength" in branch:
            yield "longer than maxLength", "x" * (branch["maxLength"] + 1)
        if "pattern" in branch:
            for candidate in ("", " ", "!!!", "\u00e9\u00e9"):
                if not re.search(branch["pattern"], candidate):
                    yield "not matching pattern", candidate
                    break
        fmt = branch.get("format")
        if fmt in ("date-time", "date", "time", "uuid"):
            yield f"not a {fmt}", "not-a-" + fmt
    elif kind == "array":
        item = branch.get("items", {})
        if branch.get("minItems", 0) > 0:
            yield "fewer than minItems", [sample(item, root) for _ in range(branch["minItems"] - 1)]
        if "maxItems" in branch:
            yield "more than maxItems", [sample(item, root) for _ in range(branch["maxItems"] + 1)]
        if item:
            for label, value in _out_of_range_values(item, root):
                yield f"item {label}", [value]


def bad_params_cases(op: Operation, *, base: dict[str, Any] | None = None) -> list[BadCase]:
    """Every refusal the schema implies: missing required, unknown, wrong type, out of range."""
    schema = params_schema(op)
    root = schema
    base = dict(base if base is not None else valid_params(op))
    cases: list[BadCase] = []
    for name in schema.get("required", []):
        params = {k: v for k, v in base.items() if k != name}
        cases.append(BadCase(f"missing {name}", params, name))
    cases.append(BadCase("unknown param", {**base, "zz_unknown_param": 1}, "zz_unknown_param"))
    for name, prop in schema.get("properties", {}).items():
        wrong = wrong_type_value(prop, root)
        if wrong is not NOTHING:
            cases.append(BadCase(f"{name} wrong type", {**base, name: wrong}, name))
        for label, value in _out_of_range_values(prop, root):
            cases.append(BadCase(f"{name} {label}", {**base, name: value}, name))
    return cases


# --- hostile input: what no operation may receive, whatever its schema says -----------------
LONE_SURROGATE = "x\ud800"
BEYOND_BIGINT = 2**63
BELOW_BIGINT = -(2**63) - 1
NON_FINITE = float("inf")  # sent as the JSON number 1e400 (JSON has no Infinity literal)
_EDGE_DATES = {
    "date": ("0001-01-01", "9999-12-31"),
    "date-time": ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"),
}


def declares(schema: dict[str, Any], root: dict[str, Any], keyword: str) -> bool:
    """Whether every non-null branch of a property bounds itself with `keyword`."""
    concrete = [b for b in branches(schema, root) if b.get("type") != "null"]
    return bool(concrete) and all(keyword in b for b in concrete)


def formats(schema: dict[str, Any], root: dict[str, Any]) -> set[str]:
    return {b["format"] for b in branches(schema, root) if "format" in b}


def nested(depth: int) -> list:
    """A list nested `depth` levels deep: [[[...]]]."""
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def hostile_params_cases(op: Operation, *, base: dict[str, Any] | None = None) -> list[BadCase]:
    """Per property, the input classes of issue 11 §2 that the pipeline refuses before any
    schema check: lone surrogates, strings/arrays/objects over the global limits, nesting
    deeper than MCP_PARAMS_MAX_DEPTH, integers beyond a bigint column, non-finite numbers,
    and dates in years 1 and 9999 where a property is a date."""
    from django.conf import settings

    schema = params_schema(op)
    root = schema
    base = dict(base if base is not None else valid_params(op))
    cases: list[BadCase] = []
    for name, prop in schema.get("properties", {}).items():
        kinds = json_types(prop, root)
        anything = "any" in kinds

        def add(label: str, value: Any, name: str = name) -> None:
            cases.append(BadCase(f"{name} {label}", {**base, name: value}, name))

        if anything or "string" in kinds:
            add("with a lone surrogate", LONE_SURROGATE)
            if not declares(prop, root, "maxLength"):
                add("over the global string limit", "x" * (settings.MCP_PARAMS_MAX_STRING_CHARS + 1))
        if (anything or "array" in kinds) and not declares(prop, root, "maxItems"):
            add("over the global item limit", [1] * (settings.MCP_PARAMS_MAX_ITEMS + 1))
        if (anything or "object" in kinds) and not declares(prop, root, "maxProperties"):
            add("over the global key limit", {f"k{i}": 1 for i in range(settings.MCP_PARAMS_MAX_ITEMS + 1)})
        add("nested too deep", nested(settings.MCP_PARAMS_MAX_DEPTH + 2))
        if anything or kinds & {"integer", "number"}:
            add("beyond a bigint", BEYOND_BIGINT)
            add("below a bigint", BELOW_BIGINT)
            add("not finite", NON_FINITE)
        for fmt in formats(prop, root) & set(_EDGE_DATES):
            for edge in _EDGE_DATES[fmt]:
                add(f"{fmt} in year {edge[:4]}", edge)
    return cases


def to_json(value: Any) -> str:
    """JSON text for a body, with inf written as 1e400 (what a hostile client would send)."""
    import json

    return json.dumps(value, allow_nan=True).replace("Infinity", "1e400")
