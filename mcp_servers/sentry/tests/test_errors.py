"""Sentry failures mapped to error codes: bad input, unknown issues, rejected or missing credentials, 5xx and 429."""

from __future__ import annotations

from django.test import override_settings

from mcp_core.models import AuditEntry
from mcp_core.registry import get_registry

from .conftest import call


def test_it_maps_an_unknown_issue_to_not_found(sentry):
    response = call("get_issue", issue_id="999999")
    assert response.error["code"] == "not_found"


def test_it_refuses_a_malformed_issue_id_before_calling_sentry(sentry):
    before = len(sentry.request_log)
    response = call("get_issue", issue_id="12; DROP")
    assert response.error["code"] == "validation_error"
    assert response.error["details"]["field"] == "issue_id"
    assert len(sentry.request_log) == before


def test_it_says_rejected_credentials_without_leaking_the_token(sandbox, db):
    with override_settings(SENTRY_BASE_URL=sandbox.url, SENTRY_AUTH_TOKEN="sntrys_wrong_token_value"):
        response = call("list_issues")
    assert response.error["code"] == "upstream_error"
    assert "rejected the credentials" in response.error["message"]
    audit = AuditEntry.objects.get(request_id=response.metadata["request_id"])
    assert "sntrys_wrong_token_value" not in str(response.to_dict()) + audit.error_message + str(audit.params)


def test_it_is_not_configured_without_a_token(db):
    with override_settings(SENTRY_AUTH_TOKEN=None):
        response = call("list_issues")
        assert response.error["code"] == "not_configured"
        server = get_registry().get_server("sentry")
        assert server.is_configured() is False


def test_it_retries_a_503_on_a_read_and_succeeds(sentry):
    sentry.inject_fault(status=503, count=1, path="/issues/$")
    before = len(sentry.requests_to("/issues/$"))
    response = call("list_issues")
    assert response.success
    assert len(sentry.requests_to("/issues/$")) - before == 2


def test_it_gives_back_a_long_retry_after_instead_of_sleeping(sentry):
    sentry.inject_fault(status=429, count=1, headers={"Retry-After": "30"})
    response = call("list_issues")
    assert response.error["code"] == "rate_limited"
    assert response.error["details"]["retry_after"] == 30
