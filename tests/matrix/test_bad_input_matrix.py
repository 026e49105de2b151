"""The bad-input matrix, generated from the registry: every refusal the params schema implies
is a validation_error naming the field, HTTP 400 through the API, never a 500 — and the
request envelope itself (body, service, operation, params) is checked the same way."""

from __future__ import annotations

import json
import re

import msgspec
import pytest
from django.conf import settings

from mcp_core.api_keys import api_key_authenticate
from mcp_core.contracts import MCPRequest
from mcp_core.discovery import params_schema
from mcp_core.models import AuditEntry
from mcp_core.pipeline import call_operation, route
from mcp_core.registry import get_registry
from mcp_core.schemas import decode_params

from .conftest import api_call, body_for, mcp_tool_call, tenant_snapshot
from .params import bad_params_cases, branches, hostile_params_cases, resolve, to_json, valid_params

OPERATIONS = get_registry().operations()


def _names_field(details: dict, field: str) -> bool:
    named = str(details.get("field", ""))
    return named == field or named.startswith((f"{field}[", f"{field}."))


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.tool_name)
def test_it_refuses_each_bad_param_naming_the_field(op, client, alice, platform_key):
    cases = bad_params_cases(op)
    assert any(case.label == "unknown param" for case in cases)
    before = tenant_snapshot(alice)
    problems = []
    for case in cases:
        body = body_for(op, case.params, tenant=alice.slug if op.tenant_scoped else None)
        status, answer, _ = api_call(client, platform_key, body)
        error = answer.get("error") or {}
        if status != 400 or error.get("code") != "validation_error":
            problems.append(f"{case.label}: HTTP {status} {error or answer.get('data')}")
        elif not _names_field(error.get("details", {}), case.field):
            problems.append(f"{case.label}: details.field is {error['details'].get('field')!r}")
        elif case.field not in error.get("message", ""):
            problems.append(f"{case.label}: message {error['message']!r} does not name {case.field}")
    assert not problems, f"{op.tool_name}:\n" + "\n".join(problems)
    assert tenant_snapshot(alice) == before


def _api_problem(case, status: int, answer: dict) -> str | None:
    error = answer.get("error") or {}
    if status != 400 or error.get("code") != "validation_error":
        return f"HTTP {status} {error or answer.get('data')}"
    if not _names_field(error.get("details", {}), case.field) or case.field not in error["message"]:
        return f"names {error['details'].get('field')!r}: {error['message']}"
    return None


# Cases whose JSON text /mcp's parser (msgspec) refuses outright, and what its parse error says.
_UNPARSEABLE_ON_MCP = {"lone surrogate": "lone surrogate", "not finite": "out of range"}


def _unparseable_on_mcp(case) -> str | None:
    return next((said for label, said in _UNPARSEABLE_ON_MCP.items() if label in case.label), None)


def _mcp_problem(case, reply) -> str | None:
    """A tool error naming the field; for text no JSON parser of ours accepts at all, a
    JSON-RPC parse error saying what is wrong."""
    answer = reply.json()
    said = _unparseable_on_mcp(case)
    if said:
        error = answer.get("error") or {}
        if reply.status_code != 400 or error.get("code") != -32700 or said not in error["message"]:
            return f"HTTP {reply.status_code} {reply.content[:200]!r}"
        return None
    result = answer.get("result") or {}
    first_line = (result.get("content") or [{}])[0].get("text", "").split("\n")[0]
    if (
        reply.status_code != 200
        or not result.get("isError")
        or not first_line.startswith("validation_error:")
    ):
        return f"HTTP {reply.status_code} {reply.content[:200]!r}"
    if case.field not in first_line:
        return f"{first_line!r} does not name {case.field}"
    return None


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.tool_name)
def test_it_refuses_hostile_params_naming_the_field_on_every_transport(op, client, alice, platform_key):
    """Issue 11 §2, per operation and per property: lone surrogates, strings/arrays/objects over
    the global limits, too deep, beyond a bigint, not finite, years 1 and 9999. The API answers
    400 validation_error, /mcp a tool error starting `validation_error: <field>`, an in-process
    caller the same error; nothing of the tenant changes, and every refusal is audited once
    (the audit row itself must survive the hostile params)."""
    cases = hostile_params_cases(op)
    assert len([c for c in cases if c.label.endswith("nested too deep")]) == len(
        params_schema(op)["properties"]
    )
    principal = api_key_authenticate(platform_key)
    tenant = alice.slug if op.tenant_scoped else None
    before = tenant_snapshot(alice)
    audited = AuditEntry.objects.filter(transport__in=["api", "internal"])
    audited_before = audited.count()
    problems = []
    for case in cases:
        body = to_json(body_for(op, case.params, tenant=tenant))
        status, answer, _ = api_call(client, platform_key, body, raw=True)
        problem = _api_problem(case, status, answer)
        route_url = f"/api/v1/mcp/{op.service}/{op.name}" + (f"?tenant={tenant}" if tenant else "")
        reply = client.post(
            route_url,
            data=to_json(case.params),
            content_type="application/json",
            headers={"Authorization": f"Bearer {platform_key}"},
        )
        route_problem = _api_problem(case, reply.status_code, reply.json())
        problems += [f"operation route {case.label}: {route_problem}"] if route_problem else []
        arguments = {**case.params, **({"tenant": tenant} if tenant else {})}
        mcp_problem = _mcp_problem(case, mcp_tool_call(client, platform_key, op.tool_name, arguments))
        response = call_operation(op.service, op.name, case.params, principal=principal, tenant=tenant)
        error = response.error or {}
        if error.get("code") != "validation_error" or not _names_field(error["details"], case.field):
            problems.append(f"in-process {case.label}: {error or 'success'}")
        problems += [f"api {case.label}: {problem}"] if problem else []
        problems += [f"mcp {case.label}: {mcp_problem}"] if mcp_problem else []
    assert not problems, f"{op.tool_name}:\n" + "\n".join(problems)
    assert tenant_snapshot(alice) == before
    # One row per API (both URLs) and in-process refusal. (/mcp's rows are written too, but inside this
    # test's transaction django-mcpz rolls a failed tool's savepoint back, rows included.)
    assert audited.count() == audited_before + 3 * len(cases)
    assert set(audited.order_by("-pk")[: 3 * len(cases)].values_list("error_code", flat=True)) <= {
        "validation_error"
    }


def _numeric_properties(schema: dict, root: dict, path: str = ""):
    """(path, branch) of every integer/number schema reachable from params, nested ones too."""
    for name, prop in schema.get("properties", {}).items():
        for branch in branches(prop, root):
            yield from _numeric_branch(branch, root, f"{path}{name}")


def _numeric_branch(branch: dict, root: dict, path: str):
    branch = resolve(branch, root)
    if branch.get("type") in ("integer", "number") and "enum" not in branch:
        yield path, branch
    elif branch.get("type") == "array":
        for item in branches(branch.get("items", {}), root):
            yield from _numeric_branch(item, root, f"{path}[]")
    elif branch.get("type") == "object":
        yield from _numeric_properties(branch, root, f"{path}.")


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.tool_name)
def test_it_declares_a_maximum_for_every_number_and_limits_within_the_global_ones(op):
    """Numbers beyond a field's range (or its column's) are refused by the schema itself, so
    every integer and number param says how large it may be; and no declared string or list
    limit exceeds the global one, which would make it unreachable."""
    schema = params_schema(op)
    unbounded = [
        path
        for path, branch in _numeric_properties(schema, schema)
        if "maximum" not in branch and "exclusiveMaximum" not in branch
    ]
    assert not unbounded, f"{op.tool_name}: no maximum for {unbounded}"
    text = json.dumps(schema)
    for keyword, limit in (
        ("maxLength", settings.MCP_PARAMS_MAX_STRING_CHARS),
        ("maxItems", settings.MCP_PARAMS_MAX_ITEMS),
        ("maxProperties", settings.MCP_PARAMS_MAX_ITEMS),
    ):
        for value in re.findall(rf'"{keyword}": (\d+)', text):
            assert int(value) <= limit, f"{op.tool_name}: {keyword} {value} exceeds the global {limit}"


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.tool_name)
def test_it_refuses_params_that_are_not_an_object_in_process(op, alice, platform_key):
    """The pipeline itself validates: in-process callers (tasks, the console) get the same
    answer as the API, which refuses such bodies before the pipeline."""
    principal = api_key_authenticate(platform_key)
    tenant = alice.slug if op.tenant_scoped else None
    first = bad_params_cases(op)[0]
    response = call_operation(op.service, op.name, first.params, principal=principal, tenant=tenant)
    assert response.error["code"] == "validation_error", (first, response.error)
    assert _names_field(response.error["details"], first.field), (first, response.error)
    for not_an_object in ([1, 2], "text", 5):
        response = route(
            MCPRequest(
                service=op.service,
                operation=op.name,
                params=not_an_object,
                principal=principal,
                tenant=tenant,
            )
        )
        assert response.error and response.error["code"] == "validation_error", response
        assert response.error["details"]["field"] == "params", response.error


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.tool_name)
def test_it_generates_params_the_schema_accepts(op):
    """The matrices' baseline is valid, so each bad case differs from a good call in one field.
    (Executing every operation is left to the cross-tenant matrix, which runs tenant ops.)"""
    decode_params(op.params, valid_params(op))
    for case in bad_params_cases(op):
        with pytest.raises(msgspec.ValidationError):
            decode_params(op.params, case.params)


ENVELOPE_CASES = [
    ("malformed JSON", '{"service": "database", ', "body"),
    ("not JSON at all", "service=database", "body"),
    ("a JSON array", '["database", "get_tenant_stats"]', "body"),
    ("a JSON string", '"database"', "body"),
    ("null", "null", "body"),
    ("missing service", '{"operation": "get_tenant_stats"}', "service"),
    ("missing operation", '{"service": "database"}', "operation"),
    ("empty service", '{"service": "", "operation": "get_tenant_stats"}', "service"),
    ("service not a string", '{"service": 5, "operation": "get_tenant_stats"}', "service"),
    ("operation not a string", '{"service": "database", "operation": ["x"]}', "operation"),
    ("params a list", '{"service": "database", "operation": "get_tenant_stats", "params": [1]}', "params"),
    ("params a string", '{"service": "database", "operation": "get_tenant_stats", "params": "x"}', "params"),
    ("params null", '{"service": "database", "operation": "get_tenant_stats", "params": null}', "params"),
    ("tenant an object", '{"service": "database", "operation": "get_tenant_stats", "tenant": {}}', "tenant"),
    (
        "tenant a boolean",
        '{"service": "database", "operation": "get_tenant_stats", "tenant": true}',
        "tenant",
    ),
    (
        "tenant with NUL",
        '{"service": "database", "operation": "get_tenant_stats", "tenant": "a\\u0000"}',
        "tenant",
    ),
    ("operation with NUL", '{"service": "database", "operation": "get_tenant_stats\\u0000"}', "operation"),
    ("unknown field", '{"service": "database", "operation": "get_tenant_stats", "paramz": {}}', "paramz"),
]


@pytest.mark.parametrize(("label", "raw", "field"), ENVELOPE_CASES, ids=[c[0] for c in ENVELOPE_CASES])
def test_it_refuses_a_bad_request_envelope_naming_the_field(label, raw, field, client, alice_key):
    status, answer, _ = api_call(client, alice_key, raw, raw=True)
    assert status == 400, answer
    assert answer["success"] is False
    assert answer["error"]["code"] == "validation_error", answer
    assert answer["error"]["details"].get("field") == field, answer
    assert answer["error"]["message"].startswith(f"{field}:"), answer


def test_it_refuses_a_wrong_content_type_with_400(client, alice_key):
    response = client.post(
        "/api/v1/mcp/call",
        data="<call/>",
        content_type="application/xml",
        HTTP_AUTHORIZATION=f"Bearer {alice_key}",
    )
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "validation_error"
    assert response.json()["error"]["details"]["field"] == "Content-Type"


def test_it_answers_not_found_for_an_unknown_service_or_operation(client, alice_key):
    for service, operation in (("nosuch", "get_tenant_stats"), ("database", "nosuch")):
        status, answer, _ = api_call(client, alice_key, {"service": service, "operation": operation})
        assert status == 404, answer
        assert answer["error"]["code"] == "not_found"


def test_it_refuses_an_overlong_idempotency_key(client, alice_key):
    response = client.post(
        "/api/v1/mcp/call",
        data={"service": "database", "operation": "get_tenant_stats"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {alice_key}",
        HTTP_IDEMPOTENCY_KEY="k" * 256,
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "Idempotency-Key"


@pytest.mark.parametrize("request_id", ["r" * 65, "has space", "semi;colon", ""])
def test_it_refuses_a_request_id_that_the_audit_log_cannot_hold(request_id, client, alice_key):
    from mcp_core.models import AuditEntry

    response = client.post(
        "/api/v1/mcp/call",
        data={"service": "database", "operation": "get_tenant_stats"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {alice_key}",
        HTTP_X_REQUEST_ID=request_id,
    )
    if request_id == "":
        # An empty header counts as absent: the server makes one up.
        assert response.status_code == 200 and len(response.json()["metadata"]["request_id"]) == 32
        return
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["details"]["field"] == "X-Request-ID"
    assert not AuditEntry.objects.filter(request_id__startswith=request_id[:10]).exists()
