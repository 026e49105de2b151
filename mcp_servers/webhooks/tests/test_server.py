"""The webhook server through the orchestrator: tenant keys see their own events only,
platform keys see all; stats; replay needs webhooks:admin."""

from __future__ import annotations

from datetime import timedelta as td

import pytest
from django.utils import timezone

from mcp_core.api_keys import api_key_authenticate
from mcp_core.pipeline import call_operation
from mcp_servers.webhooks.models import RejectedDelivery, WebhookEvent
from mcp_servers.webhooks.services import rejection_record


def _call(key, operation, params=None, tenant=None):
    return call_operation(
        "webhooks", operation, params or {}, principal=api_key_authenticate(key), tenant=tenant
    )


@pytest.fixture
def events(alice, bob):
    now = timezone.now()

    def make(provider, key, tenant, status, **extra):
        event = WebhookEvent.objects.create(
            provider=provider,
            event_id=key,
            idempotency_key=key,
            type=extra.pop("type", "invoice.paid"),
            tenant=tenant,
            payload={"id": key, "secret_looking": "no"},
            status=status,
            **extra,
        )
        return event

    return {
        "alice_ok": make("stripe", "evt_a1", alice, "processed", processed_at=now + td(milliseconds=40)),
        "alice_dead": make("calcom", "bk_a2", alice, "failed", type="BOOKING_CREATED", last_error="boom"),
        "bob_ok": make(
            "stripe", "evt_b1", bob, "processed", duplicate_count=2, processed_at=now + td(seconds=1)
        ),
        "orphan": make("retell", "call_x", None, "failed", type="call_started"),
    }


@pytest.mark.django_db
def test_tenant_keys_list_only_their_own_events_and_platform_keys_all(
    events, alice_key, bob_key, platform_key
):
    alice_ids = {e["id"] for e in _call(alice_key, "list_events").data["events"]}
    assert alice_ids == {events["alice_ok"].pk, events["alice_dead"].pk}
    bob_ids = {e["id"] for e in _call(bob_key, "list_events").data["events"]}
    assert bob_ids == {events["bob_ok"].pk}
    everything = {e["id"] for e in _call(platform_key, "list_events").data["events"]}
    assert everything == {e.pk for e in events.values()}
    only_alice = _call(platform_key, "list_events", {"tenant": "alice-salon"}).data["events"]
    assert {e["id"] for e in only_alice} == alice_ids
    filtered = _call(platform_key, "list_events", {"provider": "stripe", "status": "processed"}).data[
        "events"
    ]
    assert {e["id"] for e in filtered} == {events["alice_ok"].pk, events["bob_ok"].pk}


@pytest.mark.django_db
def test_a_tenant_key_cannot_read_or_replay_another_tenants_event(events, bob_key):
    for operation in ("get_event", "replay_event"):
        response = _call(bob_key, operation, {"id": events["alice_dead"].pk})
        assert not response.success and response.error["code"] == "not_found", operation
    response = _call(bob_key, "list_events", {"tenant": "alice-salon"})
    assert response.error["code"] == "forbidden"
    response = _call(bob_key, "get_event", {"id": events["orphan"].pk})
    assert response.error["code"] == "not_found", "tenant-less events are platform-only"
    events["alice_dead"].refresh_from_db()
    assert events["alice_dead"].status == "failed"


@pytest.mark.django_db
def test_replay_requires_the_admin_scope(events, alice, key_factory):
    reader = key_factory(tenant=alice, scopes=["webhooks:read"])
    response = _call(reader, "replay_event", {"id": events["alice_dead"].pk})
    assert response.error["code"] == "forbidden"
    assert _call(reader, "get_event", {"id": events["alice_dead"].pk}).data["payload"] == {
        "id": "bk_a2",
        "secret_looking": "no",
    }


@pytest.mark.django_db
def test_stats_count_per_provider_with_latency_and_refusals_for_platform_keys(
    events, alice_key, platform_key
):
    rejection_record("stripe", "bad_signature")
    rejection_record("stripe", "bad_signature")
    assert RejectedDelivery.objects.get().count == 2
    stats = {p["provider"]: p for p in _call(platform_key, "get_webhook_stats").data["providers"]}
    assert (stats["stripe"]["received"], stats["stripe"]["processed"], stats["stripe"]["duplicates"]) == (
        2,
        2,
        2,
    )
    assert stats["stripe"]["refused_signatures"] == 2
    assert stats["calcom"]["failed"] == 1 and stats["retell"]["failed"] == 1
    assert 0 < stats["stripe"]["latency_p50_ms"] <= stats["stripe"]["latency_max_ms"] <= 1100
    mine = {p["provider"]: p for p in _call(alice_key, "get_webhook_stats").data["providers"]}
    assert mine["stripe"]["received"] == 1 and mine["stripe"]["refused_signatures"] is None
    assert mine["retell"]["failed"] == 0


@pytest.mark.django_db
def test_retry_failed_requeues_the_visible_dead_letters(
    events, alice_key, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = _call(alice_key, "retry_failed", {"provider": "calcom"})
    assert response.data == {"queued": 1, "ids": [events["alice_dead"].pk]}
    assert len(callbacks) == 1
    events["orphan"].refresh_from_db()
    assert events["orphan"].status == "failed"


@pytest.mark.django_db
def test_bad_params_name_the_field(platform_key):
    response = _call(platform_key, "list_events", {"status": "exploded"})
    assert response.error["code"] == "validation_error" and response.error["details"]["field"] == "status"
    response = _call(platform_key, "get_event", {"id": 999999})
    assert response.error["code"] == "not_found"


@pytest.mark.django_db
def test_an_operator_sees_dead_letters_in_the_admin_and_replays_them(
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
