"""Every call through the pipeline leaves exactly one audit row and one metrics increment,
failures included, with secrets redacted."""

from __future__ import annotations

import pytest
from django.db.models import Sum

from mcp_core.api_keys import api_key_authenticate
from mcp_core.audit import REDACTED, redact
from mcp_core.contracts import MCPRequest
from mcp_core.models import AuditEntry, MetricRollup
from mcp_core.pipeline import call_operation, route

COUNTS = ("calls", "caller_errors", "not_configured", "service_failures")


def counted(operation: str) -> tuple[int, int, int, int]:
    """calls, caller_errors, not_configured, service_failures of one database operation."""
    totals = MetricRollup.objects.filter(service="database", operation=operation).aggregate(
        **{name: Sum(name) for name in COUNTS}
    )
    return tuple(totals[name] or 0 for name in COUNTS)


@pytest.fixture
def principal(alice, alice_key):
    return api_key_authenticate(alice_key)


CASES = [
    ("success", "get_tenant_stats", {}, None),
    ("validation_error", "get_call_stats", {"days": 0}, "validation_error"),
    ("unknown param", "get_call_stats", {"dayz": 1}, "validation_error"),
    ("not_found record", "get_call_stats", {"branch_id": 999_999}, "not_found"),
    ("unsafe sql by tenant", "query", {"sql": "DELETE FROM askpro_customer"}, "forbidden"),
]


@pytest.mark.parametrize(("label", "operation", "params", "code"), CASES, ids=[c[0] for c in CASES])
def test_it_records_one_audit_row_and_one_metric_per_call(label, operation, params, code, principal):
    audit_before = AuditEntry.objects.count()
    before = counted(operation)
    response = call_operation("database", operation, params, principal=principal)
    assert (response.error or {}).get("code") == code, response.error
    assert AuditEntry.objects.count() == audit_before + 1
    entry = AuditEntry.objects.get(request_id=response.metadata["request_id"])
    assert entry.outcome == ("success" if code is None else "error")
    assert entry.error_code == (code or "")
    assert entry.service == "database" and entry.operation == operation
    assert entry.principal == principal.name and entry.api_key_id == principal.api_key_id
    assert entry.tenant_id == principal.tenant_id
    assert entry.duration_ms >= 0
    calls, caller_errors, not_configured, failures = counted(operation)
    assert calls == before[0] + 1
    # Caller mistakes are counted as what they are, never as the service failing.
    assert caller_errors == before[1] + (code is not None)
    assert (not_configured, failures) == before[2:]


def test_it_counts_an_internal_failure_as_a_service_error(alice, principal, monkeypatch):
    from mcp_servers.database.server import DatabaseServer

    def explode(self, ctx, params):
        raise RuntimeError("boom with secret sk_test_abcdef")

    monkeypatch.setattr(DatabaseServer, "call", lambda self, op, ctx, params: explode(self, ctx, params))
    response = call_operation("database", "get_tenant_stats", {}, principal=principal)
    assert response.error["code"] == "internal_error"
    assert "sk_test" not in response.error["message"]
    assert response.metadata["request_id"] in response.error["message"]
    entry = AuditEntry.objects.get(request_id=response.metadata["request_id"])
    assert entry.error_code == "internal_error" and "sk_test" not in entry.error_message
    assert counted("get_tenant_stats") == (1, 0, 0, 1)


def test_it_records_a_call_without_a_key(db):
    response = route(
        MCPRequest(service="database", operation="get_tenant_stats", params={"x": 1}, principal=None)
    )
    assert response.error["code"] == "unauthorized"
    entry = AuditEntry.objects.get(request_id=response.metadata["request_id"])
    assert entry.principal == "anonymous" and entry.error_code == "unauthorized"
    assert counted("get_tenant_stats") == (1, 1, 0, 0)  # unauthorized: a caller error
    # A made-up operation is audited but creates no rollup row.
    route(MCPRequest(service="database", operation="nope", params={}, principal=None))
    assert not MetricRollup.objects.filter(operation="nope").exists()
    assert AuditEntry.objects.filter(operation="nope").count() == 1


def test_it_redacts_secrets_in_audited_params(principal):
    params = {
        "query": "ab",
        "password": "hunter2",
        "nested": {"api_key": "plain-key-value", "token": "t0k3n", "ok": "visible"},
        "note": "askp_0123456789_abcdefghijklmnop",
        "stripe": "sk_test_51abcdefghijklmnop",
        "list": ["whsec_abc123", "fine"],
    }
    response = call_operation("database", "search", params, principal=principal)
    assert response.error["code"] == "validation_error"
    entry = AuditEntry.objects.get(request_id=response.metadata["request_id"])
    stored = entry.params
    assert stored["query"] == "ab"
    assert stored["password"] == REDACTED
    assert stored["nested"] == {"api_key": REDACTED, "token": REDACTED, "ok": "visible"}
    assert stored["note"] == REDACTED and stored["stripe"] == REDACTED
    assert stored["list"] == [REDACTED, "fine"]
    text = str(stored) + entry.error_message
    for secret in ("hunter2", "plain-key-value", "t0k3n", "abcdefghijklmnop", "whsec_abc123"):
        assert secret not in text


def test_it_redacts_without_changing_the_callers_params():
    params = {"Authorization": "Bearer x", "card_number": "4242", "deep": [[{"secret": 1}]]}
    assert redact(params) == {
        "Authorization": REDACTED,
        "card_number": REDACTED,
        "deep": [[{"secret": REDACTED}]],
    }
    assert params["Authorization"] == "Bearer x"
    assert redact({"long": "x" * 5000})["long"].endswith("…")


def test_it_carries_the_idempotency_key_into_the_audit_row(client, alice, alice_key):
    response = client.post(
        "/api/v1/mcp/call",
        data={"service": "database", "operation": "get_tenant_stats"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {alice_key}",
        HTTP_IDEMPOTENCY_KEY="retry-42",
        HTTP_X_REQUEST_ID="req-abc-1",
    )
    assert response.status_code == 200
    assert response.json()["metadata"]["request_id"] == "req-abc-1"
    entry = AuditEntry.objects.get(request_id="req-abc-1")
    assert entry.idempotency_key == "retry-42" and entry.transport == "api"


def test_it_keeps_the_audit_row_for_an_overlong_request_id(principal):
    """In-process callers are not checked like the API: the row must still be written."""
    response = route(
        MCPRequest(
            service="database",
            operation="get_tenant_stats",
            params={},
            principal=principal,
            request_id="x" * 200,
            idempotency_key="k" * 400,
        )
    )
    assert response.success
    entry = AuditEntry.objects.get()
    assert entry.request_id == "x" * 64 and entry.idempotency_key == "k" * 255


def test_it_audits_a_call_whose_params_overflow_to_infinity(client, alice, alice_key):
    """`1e400` is valid JSON that parses to inf, which jsonb cannot store: the row must survive."""
    body = '{"service": "database", "operation": "get_call_stats", "params": {"days": 1e400, "branch_id": -1e400}}'
    response = client.post(
        "/api/v1/mcp/call",
        data=body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {alice_key}",
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"
    entry = AuditEntry.objects.get(request_id=response.json()["metadata"]["request_id"])
    assert entry.params == {"days": "inf", "branch_id": "-inf"}
    assert counted("get_call_stats") == (1, 1, 0, 0)


def test_it_refuses_nul_characters_and_still_audits_the_call(principal):
    response = call_operation("database", "search", {"query": "ab\x00cd", "zz\x00": 1}, principal=principal)
    assert response.error["code"] == "validation_error", response.error
    assert "\x00" not in response.error["details"]["field"]
    entry = AuditEntry.objects.get(request_id=response.metadata["request_id"])
    assert "\x00" not in str(entry.params) and "\x00" not in entry.error_message
