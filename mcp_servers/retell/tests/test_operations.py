"""Every Retell operation through the pipeline and the real client against a live RetellSandbox."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from askpro.models import Call, Customer, PhoneNumber

from .conftest import ALICE_OWN_KEY, VALID_PROMPT


# --- agents ---
def test_it_lists_only_the_tenants_agents(world):
    response = world.call("list_agents")
    assert response.success, response.error
    ids = {a["agent_id"]: a["assignment"] for a in response.data["agents"]}
    assert ids == {"agent_alice": "company", "agent_alice_main": "branch:Main"}
    assert response.data["credential_source"] == "platform"
    assert response.data["api_generation"] == "current"
    assert world.retell.requests_to(r"^/v2/list-agents$")


def test_it_lists_agents_from_a_legacy_deployment(world):
    world.retell.legacy_only = True
    response = world.call("list_agents")
    assert response.success, response.error
    assert response.data["api_generation"] == "legacy"
    assert response.data["count"] == 2
    # The fallback is remembered: the second call goes straight to the legacy route.
    world.call("list_agents")
    assert len(world.retell.requests_to(r"^/v2/list-agents$")) == 1
    assert len(world.retell.requests_to(r"^/list-agents$")) == 2


def test_it_gets_the_company_agent_with_its_prompt(world):
    response = world.call("get_agent")
    assert response.success, response.error
    assert response.data["agent_id"] == "agent_alice"
    assert response.data["engine_type"] == "retell-llm"
    assert response.data["prompt"] == "Alte Begrüßung"
    assert response.data["assignment"] == "company"


def test_it_refuses_another_tenants_agent_without_asking_retell(world):
    response = world.call("get_agent", {"agent_id": "agent_bob"})
    assert response.error_code == "not_found"
    assert response.error["details"]["field"] == "agent_id"
    assert not world.retell.requests_to(r"agent_bob")


def test_it_maps_an_agent_missing_upstream_to_not_found(world):
    world.alice.branches.filter(slug="main").update(retell_agent_id="agent_deleted")
    response = world.call("get_agent", {"agent_id": "agent_deleted"})
    assert response.error_code == "not_found"
    assert response.error["details"]["upstream_status"] == 404


# --- update_agent_prompt ---
def test_it_updates_the_prompt_of_the_agents_llm(world):
    response = world.call("update_agent_prompt", {"prompt": VALID_PROMPT})
    assert response.success, response.error
    llm_id = response.data["llm_id"]
    assert world.retell.llms[llm_id]["general_prompt"] == VALID_PROMPT
    assert response.data["applied"] is True
    assert response.data["previous_prompt_length"] == len("Alte Begrüßung")


def test_it_refuses_a_bad_prompt_field_by_field_and_sends_nothing(world):
    response = world.call("update_agent_prompt", {"prompt": "Hallo {{ }} key_0123456789abcdef0123"})
    assert response.error_code == "validation_error"
    problems = {e["problem"] for e in response.error["details"]["errors"]}
    assert {
        "too_short",
        "missing_services",
        "missing_appointments",
        "bad_placeholder",
        "contains_secret",
    } <= problems
    assert all(e["field"] == "prompt" for e in response.error["details"]["errors"])
    assert "key_0123456789abcdef0123" not in response.error["message"]
    assert not world.retell.requests_to(r"update-retell-llm")


def test_it_only_validates_on_a_dry_run(world):
    response = world.call("update_agent_prompt", {"prompt": VALID_PROMPT, "dry_run": True})
    assert response.success, response.error
    assert response.data["applied"] is False
    assert not world.retell.requests_to(r"update-retell-llm")


def test_it_refuses_to_update_another_tenants_agent(world):
    response = world.call(
        "update_agent_prompt", {"agent_id": "agent_alice", "prompt": VALID_PROMPT}, key=world.bob_key
    )
    assert response.error_code == "not_found"
    assert not world.retell.requests_to(r"update-retell-llm|get-agent")
    llm_id = world.retell.agents["agent_alice"]["response_engine"]["llm_id"]
    assert world.retell.llms[llm_id]["general_prompt"] == "Alte Begrüßung"


def test_it_refuses_a_prompt_for_an_agent_whose_llm_retell_does_not_hold(world):
    world.retell.add_agent(
        "agent_alice_main",
        response_engine={"type": "custom-llm", "llm_websocket_url": "wss://example.invalid/llm"},
    )
    response = world.call("update_agent_prompt", {"agent_id": "agent_alice_main", "prompt": VALID_PROMPT})
    assert response.error_code == "validation_error"
    assert response.error["details"]["problem"] == "unsupported_engine"


# --- list_calls ---
def test_it_lists_the_tenants_calls_page_by_page(world):
    first = world.call("list_calls", {"limit": 2})
    assert first.success, first.error
    assert first.data["api_generation"] == "current"
    assert first.data["has_more"] is True
    second = world.call("list_calls", {"limit": 2, "pagination_key": first.data["pagination_key"]})
    assert second.success, second.error
    ids = [c["call_id"] for c in first.data["calls"] + second.data["calls"]]
    assert sorted(ids) == sorted(c["call_id"] for c in world.alice_calls)
    assert second.data["has_more"] is False
    request = world.retell.requests_to(r"^/v3/list-calls$")[0].json()
    assert request["filter_criteria"]["agent"] == [
        {"agent_id": "agent_alice"},
        {"agent_id": "agent_alice_main"},
    ]


def test_it_lists_calls_from_the_legacy_generation(world):
    world.retell.legacy_only = True
    first = world.call("list_calls", {"limit": 3})
    assert first.success, first.error
    assert first.data["api_generation"] == "legacy"
    assert first.data["has_more"] is True
    second = world.call("list_calls", {"limit": 3, "pagination_key": first.data["pagination_key"]})
    ids = [c["call_id"] for c in first.data["calls"] + second.data["calls"]]
    assert sorted(ids) == sorted(c["call_id"] for c in world.alice_calls)
    legacy = world.retell.requests_to(r"^/v2/list-calls$")[0].json()
    assert legacy["filter_criteria"]["agent_id"] == ["agent_alice", "agent_alice_main"]


def test_it_converts_units_and_filters_by_status(world):
    response = world.call("list_calls", {"statuses": ["ended"], "limit": 10})
    assert response.success, response.error
    assert response.data["count"] == 3
    call = next(c for c in response.data["calls"] if c["call_id"] == world.alice_calls[0]["call_id"])
    assert call["cost"] == 0.125  # 12.5 cents
    assert call["duration_sec"] == 61
    started = dt.datetime.fromisoformat(call["started_at"])
    assert started == dt.datetime.fromtimestamp(world.alice_calls[0]["start_timestamp"] / 1000, tz=dt.UTC)


def test_it_refuses_a_time_range_that_ends_before_it_starts(world):
    response = world.call("list_calls", {"since": "2026-02-02T00:00:00Z", "until": "2026-02-01T00:00:00Z"})
    assert response.error_code == "validation_error"
    assert response.error["details"]["field"] == "until"


# --- import_calls ---
def test_it_imports_finished_calls_once(world):
    first = world.call("import_calls", {"limit": 50})
    assert first.success, first.error
    assert first.data["imported"] == 3
    assert first.data["skipped_unfinished"] == 1
    second = world.call("import_calls", {"limit": 50})
    assert second.success, second.error
    assert second.data["imported"] == 0
    assert second.data["skipped_known"] == 3
    ids = [c["call_id"] for c in world.alice_calls[:3]]
    assert Call.objects.filter(retell_call_id__in=ids).count() == 3
    assert not Call.objects.filter(retell_call_id__in=[c["call_id"] for c in world.bob_calls]).exists()


def test_it_imports_with_units_customer_and_branch(world):
    Customer.objects.create(company=world.alice, name="Known Caller", phone="+49176000001")
    assert world.call("import_calls").success
    source = world.alice_calls[1]
    row = Call.objects.get(retell_call_id=source["call_id"])
    assert row.company == world.alice
    assert row.cost == Decimal("0.1350")
    assert row.duration_sec == 61
    assert row.started_at == dt.datetime.fromtimestamp(source["start_timestamp"] / 1000, tz=dt.UTC)
    assert row.ended_at == dt.datetime.fromtimestamp(source["end_timestamp"] / 1000, tz=dt.UTC)
    assert row.customer.name == "Known Caller"
    assert row.branch.slug == "main"
    assert row.summary == "Alice caller 1 booked a haircut"
    assert row.sentiment == "Positive"
    new = Call.objects.get(retell_call_id=world.alice_calls[0]["call_id"]).customer
    assert (new.company, new.phone) == (world.alice, "+49176000000")


def test_it_imports_through_the_legacy_generation_too(world):
    world.retell.legacy_only = True
    response = world.call("import_calls", {"limit": 2})
    assert response.success, response.error
    assert response.data["api_generation"] == "legacy"
    assert response.data["total_processed"] == 2


# --- get_call_details ---
def test_it_gets_call_details_locally_and_live(world):
    assert world.call("import_calls").success
    imported = world.alice_calls[0]["call_id"]
    local = world.call("get_call_details", {"call_id": imported})
    assert local.success, local.error
    assert local.data["source"] == "local"
    assert local.data["recording_url"] == world.alice_calls[0]["recording_url"]
    assert local.data["transcript"].startswith("Agent:")
    by_pk = world.call("get_call_details", {"call_id": str(local.data["id"])})
    assert by_pk.data["retell_call_id"] == imported
    live = world.call("get_call_details", {"call_id": world.alice_calls[3]["call_id"]})
    assert live.success, live.error
    assert live.data["source"] == "retell"
    assert live.data["status"] == "ongoing"
    assert live.data["branch"]["name"] == "Main"


def test_it_hides_another_tenants_call_locally_and_upstream(world):
    assert world.call("import_calls").success
    local_alice = Call.objects.filter(company=world.alice).first()
    for call_id in (world.alice_calls[0]["call_id"], world.alice_calls[3]["call_id"], str(local_alice.pk)):
        response = world.call("get_call_details", {"call_id": call_id}, key=world.bob_key)
        assert response.error_code == "not_found", call_id
        assert "Alice" not in str(response.error)


def test_it_reports_a_call_unknown_everywhere_as_not_found(world):
    for call_id in ("call_does_not_exist", "99999999", "1234567890123456789012345"):
        response = world.call("get_call_details", {"call_id": call_id})
        assert response.error_code == "not_found", call_id
        assert response.error["details"]["field"] == "call_id"


# --- local reads ---
def test_it_reads_recent_calls_stats_and_search_locally(world):
    assert world.call("import_calls").success
    recent = world.call("get_recent_calls", {"limit": 10})
    assert recent.success, recent.error
    assert recent.data["count"] == 4  # three imported + the fixture's own call
    assert all(c["branch"]["name"] == "Main" for c in recent.data["calls"])
    stats = world.call("get_call_stats", {"days": 2})
    assert stats.success, stats.error
    assert stats.data["total"] == 4
    assert stats.data["with_appointment"] == 1
    assert stats.data["total_cost"] == pytest.approx(0.5 + 0.125 + 0.135 + 0.145)
    found = world.call("search_calls", {"query": "haircut"})
    assert found.success, found.error
    assert found.data["count"] == 3
    assert world.call("search_calls", {"query": "massage"}).data["count"] == 0
    assert world.retell.requests_to(r"list-calls")  # from the import only
    before = len(world.retell.request_log)
    world.call("get_recent_calls")
    world.call("get_call_stats")
    assert len(world.retell.request_log) == before  # local operations never go upstream


def test_it_refuses_another_tenants_branch_in_stats(world):
    branch = world.bob.branches.first()
    response = world.call("get_call_stats", {"branch_id": branch.pk})
    assert response.error_code == "not_found"


# --- phone numbers ---
def test_it_lists_the_tenants_numbers_with_their_branch(world):
    response = world.call("get_phone_numbers")
    assert response.success, response.error
    assert [n["phone_number"] for n in response.data["phone_numbers"]] == ["+4930111111"]
    assert response.data["phone_numbers"][0]["branch"]["name"] == "Main"
    assert response.data["phone_numbers"][0]["synced"] is True


def test_it_syncs_numbers_to_branches_and_is_idempotent(world):
    world.retell.add_phone_number("+4930111122", inbound_agent_id="agent_alice")
    first = world.call("sync_phone_numbers")
    assert first.success, first.error
    actions = {n["phone_number"]: n["action"] for n in first.data["numbers"]}
    assert actions == {"+4930111111": "updated", "+4930111122": "created"}
    row = PhoneNumber.objects.get(number="+4930111122")
    assert (row.company, row.branch.slug, row.retell_agent_id) == (world.alice, "main", "agent_alice")
    second = world.call("sync_phone_numbers")
    assert {n["action"] for n in second.data["numbers"]} == {"unchanged"}


def test_it_refuses_to_sync_a_number_owned_by_another_tenant(world):
    world.retell.add_phone_number("+4930111122", inbound_agent_id="agent_alice")
    world.retell.phone_numbers["+4940222222"]["inbound_agents"] = [{"agent_id": "agent_alice", "weight": 1}]
    response = world.call("sync_phone_numbers")
    assert response.error_code == "conflict"
    assert response.error["details"]["numbers"] == ["+4940222222"]
    assert not PhoneNumber.objects.filter(number="+4930111122").exists()  # nothing half-written
    assert PhoneNumber.objects.get(number="+4940222222").company == world.bob


def test_it_reports_a_dry_run_sync_without_writing(world):
    world.retell.add_phone_number("+4930111122", inbound_agent_id="agent_alice")
    response = world.call("sync_phone_numbers", {"dry_run": True})
    assert response.success, response.error
    assert response.data["created"] == 1
    assert not PhoneNumber.objects.filter(number="+4930111122").exists()


# --- create_phone_call ---
def test_it_creates_an_outbound_call_from_a_tenant_number(world):
    response = world.call(
        "create_phone_call",
        {"from_number": "+4930111111", "to_number": "+4917612345678", "dynamic_variables": {"name": "Eva"}},
    )
    assert response.success, response.error
    assert response.data["call_status"] == "registered"
    stored = world.retell.calls[response.data["call_id"]]
    assert stored["agent_id"] == "agent_alice_main"
    assert stored["retell_llm_dynamic_variables"] == {"name": "Eva"}


def test_it_refuses_to_call_from_another_tenants_number(world):
    response = world.call("create_phone_call", {"from_number": "+4940222222", "to_number": "+4917612345678"})
    assert response.error_code == "not_found"
    assert response.error["details"]["field"] == "from_number"
    assert not world.retell.requests_to(r"create-phone-call")


def test_it_refuses_a_malformed_number_by_field(world):
    response = world.call("create_phone_call", {"from_number": "+4930111111", "to_number": "0176 123"})
    assert response.error_code == "validation_error"
    assert response.error["details"]["field"] == "to_number"


def test_it_maps_retells_concurrency_limit_to_rate_limited(world):
    world.retell.concurrency_limit = 1  # the ongoing fixture call already uses the one slot
    try:
        response = world.call(
            "create_phone_call", {"from_number": "+4930111111", "to_number": "+4917612345678"}
        )
    finally:
        world.retell.concurrency_limit = 20
    assert response.error_code == "rate_limited"
    assert response.error["details"]["retry_after"] == 5.0
    assert len(world.retell.requests_to(r"create-phone-call")) == 1  # a POST is never retried


# --- test_connection and credentials ---
def test_it_tests_the_connection_with_the_platform_key(world):
    response = world.call("test_connection")
    assert response.success, response.error
    assert response.data == {
        **response.data,
        "connected": True,
        "credential_source": "platform",
        "agent_count": 2,
        "configured_agent_id": "agent_alice",
        "configured_agent_found": True,
    }


def test_it_prefers_the_tenants_own_key(world):
    world.alice.retell_api_key = ALICE_OWN_KEY
    world.alice.save(update_fields=["retell_api_key"])
    response = world.call("test_connection")
    assert response.data["credential_source"] == "tenant"
    sent = world.retell.requests_to(r"list-agents")[-1].headers["authorization"]
    assert sent == f"Bearer {ALICE_OWN_KEY}"


def test_it_is_not_configured_without_any_key(world, settings):
    settings.RETELL_API_KEY = None
    for operation in ("list_agents", "list_calls", "import_calls", "test_connection", "get_phone_numbers"):
        response = world.call(operation)
        assert response.error_code == "not_configured", operation
    assert not world.retell.request_log  # and nothing was asked of Retell, no mock data returned
    assert world.call("get_recent_calls").success  # local records stay readable


@pytest.mark.django_db(transaction=True)
def test_it_imports_each_call_once_under_concurrent_imports(world):
    """Two imports racing over the same calls: the unique retell_call_id decides, no duplicates."""
    import threading

    from django.db import connection

    results = []

    def run():
        try:
            results.append(world.call("import_calls"))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert all(r.success for r in results), [r.error for r in results]
    assert sum(r.data["imported"] for r in results) == 3
    ids = [c["call_id"] for c in world.alice_calls[:3]]
    assert Call.objects.filter(retell_call_id__in=ids).count() == 3
