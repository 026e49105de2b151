"""Each Sentry operation against the sandbox: lists, paging, search, one issue, performance, health."""

from __future__ import annotations

from mcp_core.registry import get_registry

from .conftest import call


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


def test_it_reports_performance_per_transaction(sentry):
    response = call("get_performance_data", period="24h", limit=2)
    rows = response.data["transactions"]
    assert [r["transaction"] for r in rows] == ["/api/v1/mcp/call", "/mcp"]
    assert rows[0]["p95_ms"] == 41.5 and rows[0]["count"] == 12873


def test_it_reports_health_from_a_real_authenticated_call(sentry):
    result = get_registry().get_server("sentry").health()
    assert result.status == "healthy"
    sentry.inject_fault(status=500)
    try:
        assert get_registry().get_server("sentry").health().status == "unhealthy"
    finally:
        sentry.clear_faults()
