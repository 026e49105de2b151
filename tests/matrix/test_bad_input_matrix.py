"""The bad-input matrix, generated from the registry: every refusal the params schema implies
is a validation_error naming the field, HTTP 400 through the API, never a 500 — and the
request envelope itself (body, service, operation, params) is checked the same way."""

from __future__ import annotations

import msgspec
import pytest

from mcp_core.api_keys import api_key_authenticate
from mcp_core.contracts import MCPRequest
from mcp_core.pipeline import call_operation, route
from mcp_core.registry import get_registry
from mcp_core.schemas import decode_params

from .conftest import api_call, body_for, tenant_snapshot
from .params import bad_params_cases, valid_params

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
