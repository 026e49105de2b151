"""Push notifications through the one ingestion path: the sandbox sends them (headers only,
"sync" first), /webhooks/gcal verifies channel id and token, stores, acknowledges, and the
queue runs an incremental sync of the channel's calendar."""

from __future__ import annotations

import datetime as dt

import pytest

from mcp_servers.gcal.models import BusyBlock, PushChannel
from mcp_servers.gcal.sandbox import sign_webhook
from mcp_servers.webhooks.models import RejectedDelivery, WebhookEvent

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2030, 3, 4, 9, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def watched(routed):
    answer = routed.call("watch_calendar", {"calendar_id": routed.alice_staff_calendar})
    routed.channel = PushChannel.objects.get(channel_id=answer.data["channel_id"])
    return routed


def post(client, headers: dict[str, str], tenant: str = "alice-salon"):
    extra = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
    return client.post(f"/webhooks/gcal?tenant={tenant}", data=b"", content_type="application/json", **extra)


def test_it_confirms_a_channel_with_its_sync_message_without_syncing(watched):
    assert watched.sandbox.deliver() == 1
    assert [a.status_code for a in watched.answers] == [202]
    event = WebhookEvent.objects.get(provider="gcal")
    assert event.status == "processed" and event.type == "push.sync" and event.tenant_id == watched.alice.pk
    assert event.result == "channel confirmed"


def test_it_syncs_incrementally_when_google_says_something_changed(watched):
    watched.sandbox.deliver()
    lists_before = len(watched.sandbox.requests_to(r"/events$"))
    made = watched.sandbox.add_event(watched.alice_staff_calendar, start=T0, end=T0 + HOUR, summary="Dentist")
    assert watched.sandbox.deliver() == 1
    assert watched.answers[-1].status_code == 202
    lists = watched.sandbox.requests_to(r"/events$")[lists_before:]
    assert len(lists) == 1 and "syncToken" in lists[0].query  # incremental, never a full one
    assert BusyBlock.objects.filter(event_id=made["id"], starts_at=T0).exists()
    assert (
        WebhookEvent.objects.filter(type="push.exists").get().result.startswith("incremental sync: 1 changed")
    )


def test_it_refuses_a_token_that_does_not_match_and_stores_nothing(watched, client):
    headers = watched.sandbox.state.channel_headers(
        watched.sandbox.state.channels[watched.channel.channel_id], "exists"
    )
    forged = {**headers, "X-Goog-Channel-Token": headers["X-Goog-Channel-Token"][:-4] + "AAAA"}
    assert post(client, forged).status_code == 401
    unknown = sign_webhook(b"", "a secret that is not the tenant's")
    assert post(client, unknown).status_code == 401
    swapped = {**headers, "X-Goog-Channel-ID": "another-channel"}
    answer = post(client, swapped)
    assert answer.status_code == 401 and "X-Goog-Channel-ID" in answer.json()["message"]
    missing = {k: v for k, v in headers.items() if k != "X-Goog-Channel-Token"}
    assert post(client, missing).json()["reason"] == "missing_signature"
    assert not WebhookEvent.objects.exists()
    assert {r.reason for r in RejectedDelivery.objects.all()} == {"bad_signature", "missing_signature"}


def test_it_refuses_another_tenants_channel_named_with_this_tenant(watched, client):
    headers = watched.sandbox.state.channel_headers(
        watched.sandbox.state.channels[watched.channel.channel_id], "exists"
    )
    assert post(client, headers, tenant="bob-practice").status_code == 401
    assert not WebhookEvent.objects.exists()


def test_it_verifies_by_the_channel_without_a_tenant_in_the_address(watched, client):
    headers = watched.sandbox.state.channel_headers(
        watched.sandbox.state.channels[watched.channel.channel_id], "exists"
    )
    extra = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
    answer = client.post("/webhooks/gcal", data=b"", content_type="application/json", **extra)
    assert answer.status_code == 202 and WebhookEvent.objects.get().tenant_id == watched.alice.pk


def test_it_ignores_notifications_of_a_stopped_channel(watched, client, django_capture_on_commit_callbacks):
    headers = watched.sandbox.state.channel_headers(
        watched.sandbox.state.channels[watched.channel.channel_id], "exists"
    )
    watched.call("stop_watch", {"channel_id": watched.channel.channel_id})
    lists_before = len(watched.sandbox.requests_to(r"/events$"))
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, headers).status_code == 202
    assert WebhookEvent.objects.get().result == "unknown or stopped channel: ignored"
    assert len(watched.sandbox.requests_to(r"/events$")) == lists_before


def test_it_counts_a_repeated_message_as_a_duplicate(watched, client):
    headers = watched.sandbox.state.channel_headers(
        watched.sandbox.state.channels[watched.channel.channel_id], "exists"
    )
    assert post(client, headers).status_code == 202
    again = post(client, headers)
    assert again.status_code == 200 and again.json() == {"status": "duplicate"}
    assert WebhookEvent.objects.get().duplicate_count == 1


def test_it_refuses_an_unknown_resource_state(watched, client):
    headers = watched.sandbox.state.channel_headers(
        watched.sandbox.state.channels[watched.channel.channel_id], "moved"
    )
    answer = post(client, headers)
    assert answer.status_code == 400 and answer.json()["reason"] == "bad_payload"


def test_it_restarts_a_full_sync_only_when_google_says_the_token_is_gone(watched):
    watched.sandbox.deliver()
    watched.sandbox.expire_sync_tokens(watched.alice_staff_calendar)
    made = watched.sandbox.add_event(watched.alice_staff_calendar, start=T0, end=T0 + HOUR)
    watched.sandbox.deliver()
    lists = watched.sandbox.requests_to(r"/events$")[-2:]
    assert "syncToken" in lists[0].query and "syncToken" not in lists[1].query
    assert WebhookEvent.objects.get(type="push.exists").result.startswith("full (after 410) sync")
    assert BusyBlock.objects.filter(event_id=made["id"]).exists()
