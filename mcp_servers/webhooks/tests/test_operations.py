"""The webhook server through the orchestrator: tenant keys see their own events only,
platform keys see all; stats; retrying dead letters; replay from the admin."""

from __future__ import annotations

import pytest

from mcp_servers.webhooks.models import RejectedDelivery
from mcp_servers.webhooks.services import rejection_record

from .conftest import call_server


@pytest.mark.django_db
def test_it_lists_a_tenant_keys_own_events_only_and_all_for_platform_keys(
    events, alice_key, bob_key, platform_key
):
    alice_ids = {e["id"] for e in call_server(alice_key, "list_events").data["events"]}
    assert alice_ids == {events["alice_ok"].pk, events["alice_dead"].pk}
    bob_ids = {e["id"] for e in call_server(bob_key, "list_events").data["events"]}
    assert bob_ids == {events["bob_ok"].pk}
    everything = {e["id"] for e in call_server(platform_key, "list_events").data["events"]}
    assert everything == {e.pk for e in events.values()}
    only_alice = call_server(platform_key, "list_events", {"tenant": "alice-salon"}).data["events"]
    assert {e["id"] for e in only_alice} == alice_ids
    filtered = call_server(platform_key, "list_events", {"provider": "stripe", "status": "processed"}).data[
        "events"
    ]
    assert {e["id"] for e in filtered} == {events["alice_ok"].pk, events["bob_ok"].pk}


@pytest.mark.django_db
def test_it_counts_stats_per_provider_with_latency_and_refusals_for_platform_keys(
    events, alice_key, platform_key
):
    rejection_record("stripe", "bad_signature")
    rejection_record("stripe", "bad_signature")
    assert RejectedDelivery.objects.get().count == 2
    stats = {p["provider"]: p for p in call_server(platform_key, "get_webhook_stats").data["providers"]}
    assert (stats["stripe"]["received"], stats["stripe"]["processed"], stats["stripe"]["duplicates"]) == (
        2,
        2,
        2,
    )
    assert stats["stripe"]["refused_signatures"] == 2
    assert stats["calcom"]["failed"] == 1 and stats["retell"]["failed"] == 1
    assert 0 < stats["stripe"]["latency_p50_ms"] <= stats["stripe"]["latency_max_ms"] <= 1100
    mine = {p["provider"]: p for p in call_server(alice_key, "get_webhook_stats").data["providers"]}
    assert mine["stripe"]["received"] == 1 and mine["stripe"]["refused_signatures"] is None
    assert mine["retell"]["failed"] == 0


@pytest.mark.django_db
def test_it_requeues_the_visible_dead_letters_on_retry_failed(
    events, alice_key, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = call_server(alice_key, "retry_failed", {"provider": "calcom"})
    assert response.data == {"queued": 1, "ids": [events["alice_dead"].pk]}
    assert len(callbacks) == 1
    events["orphan"].refresh_from_db()
    assert events["orphan"].status == "failed"


@pytest.mark.django_db
def test_it_shows_an_operator_the_dead_letters_in_the_admin_and_replays_them(
    events, admin_client, django_capture_on_commit_callbacks
):
    page = admin_client.get("/admin/mcp_webhooks/webhookevent/?status__exact=failed")
    assert page.status_code == 200
    assert b"bk_a2" in page.content or str(events["alice_dead"].pk).encode() in page.content
    with django_capture_on_commit_callbacks(execute=False):
        response = admin_client.post(
            "/admin/mcp_webhooks/webhookevent/",
            {"action": "replay", "_selected_action": [events["alice_dead"].pk, events["alice_ok"].pk]},
            follow=True,
        )
    assert b"1 already_processed, 1 queued" in response.content
    events["alice_dead"].refresh_from_db()
    assert events["alice_dead"].status == "received" and events["alice_dead"].attempts == 0
