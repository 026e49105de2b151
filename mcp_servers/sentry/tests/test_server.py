import pytest
import requests
from django.test import override_settings

from mcp_core.contracts import Principal
from mcp_core.models import AuditEntry
from mcp_core.pipeline import call_operation
from mcp_core.registry import get_registry
from mcp_servers.sentry.sandbox import DEMO_TOKEN, SentrySandbox

PLATFORM = Principal(kind="api_key", name="key:test", scopes=frozenset({"sentry:read"}))


@pytest.fixture(scope="module")
def sandbox():
    with SentrySandbox() as server:
        yield server


@pytest.fixture
def sentry(sandbox, db):
    sandbox.clear_faults()
    sandbox.reset_rate_limit()
    with override_settings(SENTRY_BASE_URL=sandbox.url, SENTRY_AUTH_TOKEN=DEMO_TOKEN, SENTRY_ORG="askpro"):
        yield sandbox


def call(operation, **params):
    return call_operation("sentry", operation, params, principal=PLATFORM)


def test_it_lists_unresolved_issues_newest_first(sentry):
    response = call("list_issues")
    assert response.success, response.error
    issues = response.data["issues"]
    assert [i["id"] for i in issues] == ["1001", "1002", "1003", "1004"]
    assert issues[0]["count"] == 57 and isinstance(issues[0]["count"], int)
    assert response.data["next_cursor"] is None


def test_it_pages_with_the_link_header_cursor(sentry):
    first = call("list_issues", limit=2)
    assert [i["id"] for i in first.data["issues"]] == ["1001", "1002"]
    second = call("list_issues", limit=2, cursor=first.data["next_cursor"])
    assert [i["id"] for i in second.data["issues"]] == ["1003", "1004"]
    assert second.data["next_cursor"] is None


def test_it_filters_by_level_and_sorts_by_frequency(sentry):
    response = call("list_issues", level="warning")
    assert [i["level"] for i in response.data["issues"]] == ["warning"]
    by_freq = call("list_issues", sort="freq")
    counts = [i["count"] for i in by_freq.data["issues"]]
    assert counts == sorted(counts, reverse=True)


def test_it_searches_issues_by_text(sentry):
    response = call("search_issues", query="TimeoutError is:unresolved")
    assert [i["short_id"] for i in response.data["issues"]] == ["CONTROL-PLANE-2"]


def test_it_reads_one_issue_and_its_latest_event(sentry):
    issue = call("get_issue", issue_id="1003")
    assert issue.data["issue"]["title"].startswith("KeyError")
    event = call("get_latest_event", issue_id="1003")
    assert event.success, event.error
    assert event.data["exceptions"][0]["type"] == "KeyError"
    assert event.data["exceptions"][0]["frames"][0]["function"] == "handle_retell"
    assert event.data["tags"]["environment"] == "production"


def test_it_maps_an_unknown_issue_to_not_found(sentry):
    response = call("get_issue", issue_id="999999")
    assert response.error["code"] == "not_found"


def test_it_reports_performance_per_transaction(sentry):
    response = call("get_performance_data", period="24h", limit=2)
    rows = response.data["transactions"]
    assert [r["transaction"] for r in rows] == ["/api/v1/mcp/call", "/mcp"]
    assert rows[0]["p95_ms"] == 41.5 and rows[0]["count"] == 12873


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


def test_it_reports_health_from_a_real_authenticated_call(sentry):
    result = get_registry().get_server("sentry").health()
    assert result.status == "healthy"
    sentry.inject_fault(status=500)
    try:
        assert get_registry().get_server("sentry").health().status == "unhealthy"
    finally:
        sentry.clear_faults()


def test_the_sandbox_refuses_bad_tokens_like_sentry(sandbox):
    response = requests.get(f"{sandbox.url}/api/0/organizations/askpro/issues/", timeout=5)
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token"}


def test_the_sandbox_sends_rate_limit_headers_and_link_cursors(sandbox):
    sandbox.reset_rate_limit()
    response = requests.get(
        f"{sandbox.url}/api/0/organizations/askpro/issues/",
        params={"limit": 1},
        headers={"Authorization": f"Bearer {DEMO_TOKEN}"},
        timeout=5,
    )
    assert response.status_code == 200
    assert "X-Sentry-Rate-Limit-Remaining" in response.headers
    assert 'rel="next"; results="true"' in response.headers["Link"]
    assert 'rel="previous"; results="false"' in response.headers["Link"]


def test_the_sandbox_answers_429_when_the_limit_is_spent(sandbox):
    sandbox.reset_rate_limit(0)
    response = requests.get(
        f"{sandbox.url}/api/0/organizations/askpro/issues/",
        headers={"Authorization": f"Bearer {DEMO_TOKEN}"},
        timeout=5,
    )
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    sandbox.reset_rate_limit()
