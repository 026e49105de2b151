"""The webhook server refuses another tenant's events, replays without webhooks:admin and bad params."""

from __future__ import annotations

import pytest

from .conftest import call_server


@pytest.mark.django_db
def test_it_refuses_a_tenant_key_another_tenants_event(events, bob_key):
    for operation in ("get_event", "replay_event"):
        response = call_server(bob_key, operation, {"id": events["alice_dead"].pk})
        assert not response.success and response.error["code"] == "not_found", operation
    response = call_server(bob_key, "list_events", {"tenant": "alice-salon"})
    assert response.error["code"] == "forbidden"
    response = call_server(bob_key, "get_event", {"id": events["orphan"].pk})
    assert response.error["code"] == "not_found", "tenant-less events are platform-only"
    events["alice_dead"].refresh_from_db()
    assert events["alice_dead"].status == "failed"


@pytest.mark.django_db
def test_it_requires_the_admin_scope_to_replay(events, alice, key_factory):
    reader = key_factory(tenant=alice, scopes=["webhooks:read"])
    response = call_server(reader, "replay_event", {"id": events["alice_dead"].pk})
    assert response.error["code"] == "forbidden"
    assert call_server(reader, "get_event", {"id": events["alice_dead"].pk}).data["payload"] == {
        "id": "bk_a2",
        "secret_looking": "no",
    }


@pytest.mark.django_db
def test_it_names_the_field_of_bad_params(platform_key):
    response = call_server(platform_key, "list_events", {"status": "exploded"})
    assert response.error["code"] == "validation_error" and response.error["details"]["field"] == "status"
    response = call_server(platform_key, "get_event", {"id": 999999})
    assert response.error["code"] == "not_found"
