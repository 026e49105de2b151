"""Property-based fuzzing of the entry points (issue 11 §2), with Hypothesis: a fixed seed
(derandomize) and a bounded number of examples, so it runs the same way in every CI run and in
well under a minute.

Params are drawn from each operation's own JSON Schema (the registry's, so every operation is
covered the moment it is registered), each property either a value of its declared type —
bounds, formats and enums included, and stretched past them — or arbitrary JSON with the
hostile leaves of the matrices (NUL, lone surrogates, huge integers, infinities, years 1 and
9999). Raw bodies and header values are fuzzed too. Any 5xx fails, except the one documented
service state: an operation that calls an upstream answers 503 `not_configured` when no
credentials exist (none do here), and nothing else.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_core.discovery import params_schema
from mcp_core.registry import get_registry

from .conftest import mcp_tool_call
from .params import branches, json_types, non_null, to_json

pytestmark = pytest.mark.django_db

OPERATIONS = get_registry().operations()
FUZZ = settings(
    derandomize=True,  # a fixed seed: the same examples in every run
    max_examples=150,  # raw bodies and headers
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
    database=None,
)
PER_OPERATION = settings(FUZZ, max_examples=10)
# A valid call of these renders every admin page (seconds each): fewer examples, same seed.
EXPENSIVE = {"ui_audit_audit_all": 2}

# Text with everything a caller can put in JSON: NUL, control characters, lone surrogates.
any_text = st.text(st.characters(exclude_categories=()), max_size=40)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    any_text,
    st.sampled_from(["0001-01-01", "9999-12-31", "9999-12-31T23:59:59Z", "\x00", "\ud800", "x" * 70_000]),
)
# The matrices' hostile classes, drawn often so that a few examples per operation meet them.
hostile = st.sampled_from(
    ["x\x00", "\ud800", "a\udfff", 2**63, -(2**63) - 1, float("inf"), "0001-01-01", "9999-12-31T23:59:59Z"]
) | st.builds(lambda n: _deep(n), st.integers(min_value=30, max_value=80))
hostile_names = st.sampled_from(["x\x00", "\ud800", "a\udfff", "k" * 70_000])
json_values = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4),
    max_leaves=12,
)


def _deep(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def typed(schema: dict[str, Any], root: dict[str, Any]) -> st.SearchStrategy:
    """Values of the property's declared type, within and just past its bounds."""
    branch = non_null(schema, root) or {}
    if "enum" in branch:
        return st.sampled_from(branch["enum"])
    kinds = json_types(schema, root)
    options = []
    if "integer" in kinds or "number" in kinds:
        low = branch.get("minimum", -(2**40))
        high = branch.get("maximum", 2**40)
        options.append(st.integers(min_value=int(low) - 2, max_value=int(high) + 2))
    if "number" in kinds:
        options.append(st.floats(allow_nan=False))
    if "boolean" in kinds:
        options.append(st.booleans())
    if "string" in kinds:
        formats = {b.get("format") for b in branches(schema, root)}
        if "date" in formats:
            options.append(st.dates().map(dt.date.isoformat))
        if "date-time" in formats:
            options.append(st.datetimes(timezones=st.just(dt.UTC)).map(lambda d: d.isoformat()))
        size = branch.get("maxLength", 60)
        options.append(st.text(st.characters(exclude_categories=()), max_size=size + 2))
    if "array" in kinds:
        item = branch.get("items", {})
        options.append(
            st.lists(typed(item, root) if item else json_values, max_size=branch.get("maxItems", 4) + 1)
        )
    return st.one_of(options) if options else json_values


def params_for(op) -> st.SearchStrategy[dict[str, Any]]:
    schema = params_schema(op)
    required = set(schema.get("required", []))
    props = {
        name: st.one_of(typed(prop, schema), json_values)
        for name, prop in schema.get("properties", {}).items()
    }
    base = st.fixed_dictionaries(
        {k: v for k, v in props.items() if k in required},
        optional={k: v for k, v in props.items() if k not in required},
    )
    # Now and then a key the schema does not know.
    return st.one_of(
        base, st.builds(lambda p, k, v: {**p, k: v}, base, any_text | hostile_names, json_values)
    )


def _allowed_5xx(op, answer: dict[str, Any]) -> bool:
    error = answer.get("error") or {}
    return op.annotations.open_world and error.get("code") == "not_configured"


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.tool_name)
def test_it_never_answers_5xx_to_generated_params(op, client, alice, platform_key):
    examples = EXPENSIVE.get(op.tool_name, PER_OPERATION.max_examples)
    settings(PER_OPERATION, max_examples=examples)(given(params=params_for(op))(_call_fuzzed))(
        op=op, client=client, alice=alice, platform_key=platform_key
    )


def _call_fuzzed(op, params, client, alice, platform_key):
    tenant = alice.slug if op.tenant_scoped else None
    body = {"service": op.service, "operation": op.name, "params": params}
    if tenant:
        body["tenant"] = tenant
    response = client.post(
        "/api/v1/mcp/call",
        data=to_json(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {platform_key}"},
    )
    answer = response.json()  # JSON always, never an HTML page
    assert response.status_code < 500 or _allowed_5xx(op, answer), (response.status_code, answer)
    assert isinstance(answer.get("success"), bool), answer
    if response.status_code == 400:
        assert answer["error"]["details"].get("field"), answer

    # The same params through the operation's own URL (the params are the body).
    response = client.post(
        f"/api/v1/mcp/{op.service}/{op.name}" + (f"?tenant={tenant}" if tenant else ""),
        data=to_json(params),
        content_type="application/json",
        headers={"Authorization": f"Bearer {platform_key}"},
    )
    answer = response.json()
    assert response.status_code < 500 or _allowed_5xx(op, answer), (response.status_code, answer)
    if response.status_code == 400:
        assert answer["error"]["details"].get("field"), answer

    arguments = {**params, **({"tenant": tenant} if tenant else {})}
    reply = mcp_tool_call(client, platform_key, op.tool_name, arguments)
    assert reply.status_code < 500, reply.content[:300]
    message = reply.json()
    assert message["jsonrpc"] == "2.0" and ("result" in message or "error" in message), message
    text = json.dumps(message)
    assert "internal_error" not in text, text[:500]


raw_bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(to_json).map(str.encode),
    st.builds(lambda n: b"[" * n + b"]" * n, st.integers(min_value=0, max_value=5000)),
)
header_values = st.text(st.characters(exclude_categories=()), max_size=60) | st.just("a" * 5000)
PATHS = [
    "/api/v1/mcp/call",
    "/api/v1/mcp/database/get_call_stats",
    "/mcp",
    *(f"/webhooks/{provider}" for provider in sorted(get_registry().webhooks)),
]
HEADERS = [
    "Idempotency-Key",
    "X-Request-ID",
    "Mcp-Session-Id",
    "MCP-Protocol-Version",
    "Mcp-Method",
    "Mcp-Name",
]
HEADERS += ["Stripe-Signature", "X-Cal-Signature-256", "X-Retell-Signature"]


@FUZZ
@given(path=st.sampled_from(PATHS), body=raw_bodies, header=st.sampled_from(HEADERS), value=header_values)
def test_it_never_answers_5xx_to_raw_bodies_and_headers(path, body, header, value, client, alice_key):
    headers = {
        "Authorization": f"Bearer {alice_key}",
        "Accept": "application/json, text/event-stream",
        header: value,
    }
    response = client.post(path, data=body, content_type="application/json", headers=headers)
    assert response.status_code < 500, (response.status_code, response.content[:300])
    if response.status_code not in (202, 204):
        assert response["Content-Type"].startswith("application/json"), response.content[:300]
        response.json()
