"""`mcp_search_tools`: ranking on realistic queries, over a test catalogue of realistic fake
operations and over the live registry, and its scope filtering through /mcp."""

from __future__ import annotations

import pytest
from django.test import override_settings

from mcp_core.mcp.search import rank, stem, tokens
from mcp_core.registry import build_registry, get_registry
from tests.mcp.fake_servers import FAKE_SERVERS
from tests.mcp.helpers import call_tool, list_tools

CATALOGUE = FAKE_SERVERS + ["mcp_servers.database.server.DatabaseServer"]


def names(query: str, ops, limit: int = 5) -> list[str]:
    return [hit.op.tool_name for hit in rank(query, ops, limit=limit)]


@pytest.fixture(scope="module")
def catalogue_ops():
    return build_registry(CATALOGUE).operations()


def test_it_brings_word_forms_and_synonyms_together():
    assert stem("failing") == stem("failed") == "fail"
    assert stem("cancelling") == stem("cancellation") == "cancel"
    assert stem("calling") == "call"
    assert tokens("Cancel an appointment") == tokens("cancel the booking")


@pytest.mark.parametrize(
    ("query", "best"),
    [
        ("cancel an appointment", "calcom_cancel_booking"),
        ("refund", "stripe_create_refund"),
        ("refund a customer's payment", "stripe_create_refund"),
        ("replay a webhook", "webhooks_replay_event"),
        ("change the voice agent's prompt", "retell_update_agent_prompt"),
        ("stripe invoices", "stripe_list_invoices"),
        ("look up a customer by phone number", "database_search"),
        ("how many jobs are waiting in the queue", "queue_get_queue_depth"),
    ],
)
def test_it_ranks_the_right_tool_first(catalogue_ops, query, best):
    assert names(query, catalogue_ops)[0] == best


def test_it_answers_why_calls_fail_with_call_errors_and_call_statistics(catalogue_ops):
    top = names("why are calls failing", catalogue_ops, limit=2)
    assert set(top) == {"retell_get_call_errors", "database_get_call_stats"}


def test_it_returns_nothing_for_a_query_that_matches_nothing(catalogue_ops):
    assert names("zebra quantum", catalogue_ops) == []
    assert names("the of and", catalogue_ops) == []


def test_it_ranks_well_on_the_live_registry():
    ops = get_registry().operations()
    servers = set(get_registry().servers)
    assert "database_get_call_stats" in names("why are calls failing", ops, limit=3)
    if "calcom" in servers:
        assert names("cancel an appointment", ops)[0].startswith("calcom_cancel")
    if "stripe" in servers:
        assert "refund" in names("refund", ops)[0]
        assert names("refund", ops)[0].startswith("stripe_")


@pytest.mark.django_db
def test_it_searches_only_the_tools_a_key_may_call(client, alice, key_factory, fresh_registry):
    with override_settings(MCP_SERVERS=CATALOGUE):
        reader = key_factory(tenant=alice, scopes=["database:read", "calcom:read"])
        visible = list_tools(client, key=reader)
        result = call_tool(client, "mcp_search_tools", {"query": "cancel an appointment"}, key=reader)
        refund = call_tool(client, "mcp_search_tools", {"query": "refund", "limit": 3}, key=reader)
        everyone = key_factory(tenant=None, scopes=["*"])
        full = call_tool(client, "mcp_search_tools", {"query": "refund", "limit": 3}, key=everyone)
    assert result["isError"] is False
    matches = result["structuredContent"]["matches"]
    assert matches, "a reader still finds the calcom read tools"
    assert all(match["name"] in visible for match in matches)
    assert "calcom_cancel_booking" not in [m["name"] for m in matches]  # needs calcom:write
    first = matches[0]
    assert first["inputSchema"] == visible[first["name"]]["inputSchema"]
    assert first["outputSchema"] == visible[first["name"]]["outputSchema"]
    assert refund["structuredContent"]["matches"] == []
    assert full["structuredContent"]["matches"][0]["name"] == "stripe_create_refund"


@pytest.mark.django_db
def test_it_reports_a_bad_search_as_a_tool_error(client, alice_key):
    result = call_tool(client, "mcp_search_tools", {"query": "refund", "limit": 500}, key=alice_key)
    assert result["isError"] is True
    assert "limit" in result["content"][0]["text"]
