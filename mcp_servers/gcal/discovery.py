"""The Calendar API's discovery document as the google-api-python-client library ships it
(`calendar.v3.json`): the client is built from it, the sandbox checks every request's
parameters against it, and the contract test checks the sandbox's answers against its schemas."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any

STANDARD_PARAMETERS = "parameters"  # the document's top-level, every method's too


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    path = resources.files("googleapiclient") / "discovery_cache" / "documents" / "calendar.v3.json"
    return json.loads(path.read_text(encoding="utf-8"))


def methods() -> list[tuple[str, dict[str, Any]]]:
    """Every method as (resource.method, its description), nested resources included."""
    found: list[tuple[str, dict[str, Any]]] = []

    def walk(prefix: str, resources_: dict[str, Any]) -> None:
        for name, resource in resources_.items():
            for method_name, method in resource.get("methods", {}).items():
                found.append((f"{prefix}{name}.{method_name}", method))
            walk(f"{prefix}{name}.", resource.get("resources", {}))

    walk("", document()["resources"])
    return found


def _path_pattern(path: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", path)
    regex = "".join(f"(?P<{p[1:-1].lstrip('+')}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{regex}$")


@lru_cache(maxsize=1)
def _routes() -> list[tuple[str, re.Pattern[str], str, dict[str, Any]]]:
    return [
        (m["httpMethod"], _path_pattern(m.get("flatPath") or m["path"]), name, m) for name, m in methods()
    ]


def match(http_method: str, path: str) -> tuple[str, dict[str, Any], dict[str, str]] | None:
    """The method a request (path relative to servicePath) calls: (name, method, path params)."""
    for verb, pattern, name, method in _routes():
        found = pattern.match(path)
        if verb == http_method and found:
            return name, method, found.groupdict()
    return None


def parameter_problem(method: dict[str, Any], query: dict[str, list[str]]) -> str | None:
    """What Google would refuse in a request's query: an unknown parameter, a repeated one it
    does not repeat, a bad integer or enum value. None when the query is valid."""
    declared = {**document().get(STANDARD_PARAMETERS, {}), **method.get("parameters", {})}
    for name, values in query.items():
        spec = declared.get(name)
        if spec is None or spec.get("location") == "path":
            return f"Invalid parameter: {name}"
        if len(values) > 1 and not spec.get("repeated"):
            return f"Parameter {name} given more than once"
        for value in values:
            if spec.get("type") == "integer":
                try:
                    number = int(value)
                except ValueError:
                    return f"Invalid value for {name}: {value}"
                if "minimum" in spec and number < int(spec["minimum"]):
                    return f"Invalid value for {name}: {value}"
            if spec.get("type") == "boolean" and value not in ("true", "false"):
                return f"Invalid value for {name}: {value}"
            if "enum" in spec and value not in spec["enum"]:
                return f"Invalid value for {name}: {value}"
    for name, spec in method.get("parameters", {}).items():
        if spec.get("required") and spec.get("location") == "query" and name not in query:
            return f"Required parameter: {name}"
    return None


def schema_problems(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Where `value` departs from a discovery schema: a wrong type, or a property the schema
    does not declare (the document lists every field an answer may carry)."""
    if "$ref" in schema:
        schema = document()["schemas"][schema["$ref"]]
    kind = schema.get("type")
    problems: list[str] = []
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{where}: expected an object"]
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in props:
                problems += schema_problems(item, props[key], f"{where}.{key}")
            elif extra is not None:
                problems += schema_problems(item, extra, f"{where}.{key}")
            else:
                problems.append(f"{where}.{key}: not in the schema")
    elif kind == "array":
        if not isinstance(value, list):
            return [f"{where}: expected an array"]
        for i, item in enumerate(value):
            problems += schema_problems(item, schema.get("items", {}), f"{where}[{i}]")
    elif kind == "string":
        if not isinstance(value, str):
            problems.append(f"{where}: expected a string")
    elif kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{where}: expected an integer")
    elif kind == "boolean" and not isinstance(value, bool):
        problems.append(f"{where}: expected a boolean")
    return problems
