"""Each operation against the sandbox through the real google-api-python-client: what Google
was asked, what came back, and what was stored."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from mcp_servers.gcal.models import BusyBlock, CalendarLink, PushChannel

from .conftest import ALICE_USER, BOB_CALENDAR, BOB_SA

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2030, 3, 4, 9, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def iso(when: dt.datetime) -> str:
    return when.isoformat()


def test_it_lists_the_calendars_a_tenant_reaches_page_by_page_and_records_them(world, staff):
    CalendarLink.objects.filter(calendar_id=world.alice_staff_calendar).update(staff=staff)
    first = world.call("list_calendars", {"max_results": 1})
    assert first.success, first.error
    second = world.call("list_calendars", {"max_results": 1, "page_token": first.data["next_page_token"]})
    found = first.data["calendars"] + second.data["calendars"]
    assert {c["calendar_id"] for c in found} == {ALICE_USER, world.alice_staff_calendar}
    assert second.data["next_page_token"] is None
    mapped = next(c for c in found if c["calendar_id"] == world.alice_staff_calendar)
    assert mapped["staff_id"] == staff.pk and mapped["summary"] == "Anna (stylist)"
    assert next(c for c in found if c["calendar_id"] == ALICE_USER)["primary"] is True
    shared = world.sandbox.state.add_calendar(ALICE_USER, summary="Front desk")
    world.call("list_calendars")
    assert CalendarLink.objects.filter(company=world.alice, calendar_id=shared).exists()


def test_it_lists_events_in_a_time_range_in_start_order_with_paging(world):
    cal = world.alice_staff_calendar
    for hours in (3, 1, 2):
        world.sandbox.add_event(
            cal, start=T0 + hours * HOUR, end=T0 + (hours + 1) * HOUR, summary=f"h{hours}"
        )
    world.sandbox.add_event(cal, start=T0 - 48 * HOUR, end=T0 - 47 * HOUR, summary="before")
    params = {"calendar_id": cal, "time_min": iso(T0), "time_max": iso(T0 + 24 * HOUR), "max_results": 2}
    first = world.call("list_events", params)
    assert [e["summary"] for e in first.data["events"]] == ["h1", "h2"]
    second = world.call("list_events", {**params, "page_token": first.data["next_page_token"]})
    assert [e["summary"] for e in second.data["events"]] == ["h3"] and second.data["next_page_token"] is None
    listed = world.sandbox.requests_to(r"/events$")[0].query
    assert listed["singleEvents"] == ["true"] and listed["orderBy"] == ["startTime"]


def test_it_answers_free_busy_for_several_calendars(world):
    world.sandbox.add_event(ALICE_USER, start=T0, end=T0 + HOUR)
    world.sandbox.add_event(world.alice_staff_calendar, start=T0 + 2 * HOUR, end=T0 + 3 * HOUR)
    world.sandbox.add_event(
        world.alice_staff_calendar, start=T0 + 5 * HOUR, end=T0 + 6 * HOUR, transparency="transparent"
    )
    answer = world.call(
        "get_free_busy",
        {
            "calendar_ids": [ALICE_USER, world.alice_staff_calendar],
            "time_min": iso(T0),
            "time_max": iso(T0 + 8 * HOUR),
        },
    )
    busy = {c["calendar_id"]: c["busy"] for c in answer.data["calendars"]}
    assert busy[ALICE_USER] == [{"start": "2030-03-04T09:00:00.000Z", "end": "2030-03-04T10:00:00.000Z"}]
    assert busy[world.alice_staff_calendar] == [
        {"start": "2030-03-04T11:00:00.000Z", "end": "2030-03-04T12:00:00.000Z"}
    ]


def test_it_creates_one_event_for_the_same_request_twice(world):
    params = {
        "calendar_id": world.alice_staff_calendar,
        "summary": "Inventory",
        "start": iso(T0),
        "end": iso(T0 + HOUR),
    }
    first = world.call("create_event", params, idempotency_key="order-17")
    again = world.call("create_event", params, idempotency_key="order-17")
    assert first.data["created"] is True and again.data["created"] is False
    assert first.data["event"]["event_id"] == again.data["event"]["event_id"]
    events = world.sandbox.state.calendars[world.alice_staff_calendar].events
    assert len(events) == 1
    other = world.call("create_event", params, idempotency_key="order-18")
    assert other.data["created"] is True and len(events) == 2


def test_it_creates_events_marked_free_or_busy_with_their_fields(world):
    answer = world.call(
        "create_event",
        {"calendar_id": ALICE_USER, "summary": "Lunch", "start": iso(T0), "end": iso(T0 + HOUR), "busy": False,
         "location": "Café", "description": "weekly", "time_zone": "Europe/Berlin"},
    )  # fmt: skip
    event = world.sandbox.state.calendars[ALICE_USER].events[answer.data["event"]["event_id"]]
    assert event["transparency"] == "transparent" and event["location"] == "Café"
    assert event["start"] == {"dateTime": "2030-03-04T09:00:00Z", "timeZone": "Europe/Berlin"}
    assert answer.data["event"]["busy"] is False


def test_it_updates_an_event_guarded_by_its_etag(world):
    made = world.call(
        "create_event", {"calendar_id": ALICE_USER, "summary": "A", "start": iso(T0), "end": iso(T0 + HOUR)}
    )
    event = made.data["event"]
    moved = world.call(
        "update_event",
        {"calendar_id": ALICE_USER, "event_id": event["event_id"], "etag": event["etag"], "start": iso(T0 + HOUR),
         "end": iso(T0 + 2 * HOUR)},
    )  # fmt: skip
    assert moved.success, moved.error
    assert moved.data["event"]["start"] == "2030-03-04T10:00:00Z" and moved.data["event"]["summary"] == "A"
    assert moved.data["event"]["etag"] != event["etag"]
    sent = world.sandbox.requests_to(r"/events/" + event["event_id"])[-1]
    assert sent.method == "PATCH" and sent.headers["if-match"] == event["etag"]


def test_it_refuses_an_update_over_a_change_made_in_google_meanwhile(world):
    made = world.call(
        "create_event", {"calendar_id": ALICE_USER, "summary": "A", "start": iso(T0), "end": iso(T0 + HOUR)}
    )
    event = made.data["event"]
    world.sandbox.edit_event(ALICE_USER, event["event_id"], summary="Changed in Google")
    stale = world.call(
        "update_event",
        {"calendar_id": ALICE_USER, "event_id": event["event_id"], "etag": event["etag"], "summary": "Ours"},
    )
    assert stale.error["code"] == "conflict" and stale.error["details"]["upstream_status"] == 412
    assert (
        world.sandbox.state.calendars[ALICE_USER].events[event["event_id"]]["summary"] == "Changed in Google"
    )


def test_it_deletes_an_event_once(world):
    made = world.call(
        "create_event", {"calendar_id": ALICE_USER, "summary": "A", "start": iso(T0), "end": iso(T0 + HOUR)}
    )
    params = {"calendar_id": ALICE_USER, "event_id": made.data["event"]["event_id"]}
    assert world.call("delete_event", params).data == {"event_id": params["event_id"], "deleted": True}
    assert world.call("delete_event", params).data == {"event_id": params["event_id"], "deleted": False}
    assert world.sandbox.state.calendars[ALICE_USER].events[params["event_id"]]["status"] == "cancelled"


def test_it_syncs_fully_first_then_incrementally_with_the_sync_token(world):
    cal = world.alice_staff_calendar
    kept = world.sandbox.add_event(cal, start=T0, end=T0 + HOUR)
    dropped = world.sandbox.add_event(cal, start=T0 + 2 * HOUR, end=T0 + 3 * HOUR)
    first = world.call("sync_calendar", {"calendar_id": cal})
    assert first.data["full"] is True and first.data["busy_blocks"] == 2
    assert "syncToken" not in world.sandbox.requests_to(r"/events$")[-1].query
    world.sandbox.remove_event(cal, dropped["id"])
    world.sandbox.edit_event(cal, kept["id"], start=T0 + 4 * HOUR, end=T0 + 5 * HOUR)
    second = world.call("sync_calendar", {"calendar_id": cal})
    assert second.data["full"] is False and second.data["changed"] == 2 and second.data["removed"] == 1
    assert "syncToken" in world.sandbox.requests_to(r"/events$")[-1].query
    block = BusyBlock.objects.get(calendar__calendar_id=cal)
    assert block.event_id == kept["id"] and block.starts_at == T0 + 4 * HOUR


def test_it_restarts_a_full_sync_when_google_answers_410_gone(world):
    cal = world.alice_staff_calendar
    world.sandbox.add_event(cal, start=T0, end=T0 + HOUR)
    world.call("sync_calendar", {"calendar_id": cal})
    BusyBlock.objects.create(company=world.alice, calendar=CalendarLink.objects.get(calendar_id=cal),
                             event_id="stale0", starts_at=T0, ends_at=T0 + HOUR)  # fmt: skip
    world.sandbox.expire_sync_tokens(cal)
    answer = world.call("sync_calendar", {"calendar_id": cal})
    assert answer.data["restarted_after_gone"] is True and answer.data["full"] is True
    lists = world.sandbox.requests_to(r"/events$")[-2:]
    assert "syncToken" in lists[0].query and "syncToken" not in lists[1].query
    assert not BusyBlock.objects.filter(event_id="stale0").exists() and answer.data["busy_blocks"] == 1
    assert CalendarLink.objects.get(calendar_id=cal).full_syncs == 2


def test_it_reads_a_calendar_of_many_pages_in_one_sync(world, monkeypatch):
    from mcp_servers.gcal import sync

    monkeypatch.setattr(sync, "PAGE_SIZE", 2)
    for i in range(5):
        world.sandbox.add_event(ALICE_USER, start=T0 + i * HOUR, end=T0 + (i + 1) * HOUR)
    answer = world.call("sync_calendar", {"calendar_id": ALICE_USER})
    assert answer.data["pages"] == 3 and answer.data["busy_blocks"] == 5
    assert CalendarLink.objects.get(calendar_id=ALICE_USER).sync_token


def test_it_opens_and_stops_a_push_channel(world):
    answer = world.call("watch_calendar", {"calendar_id": world.alice_staff_calendar, "ttl_seconds": 3600})
    assert answer.success, answer.error
    channel = PushChannel.objects.get(channel_id=answer.data["channel_id"])
    google_channel = world.sandbox.state.channels[channel.channel_id]
    assert google_channel.address == "https://askpro.example.com/webhooks/gcal?tenant=alice-salon"
    assert google_channel.token.startswith(f"gc1.{channel.channel_id}.")
    assert CalendarLink.objects.get(calendar_id=world.alice_staff_calendar).sync_token  # first sync made
    stopped = world.call("stop_watch", {"channel_id": channel.channel_id})
    assert stopped.data == {"channel_id": channel.channel_id, "stopped": True}
    assert channel.channel_id not in world.sandbox.state.channels
    assert world.call("stop_watch", {"channel_id": channel.channel_id}).data["stopped"] is False


def test_it_tests_the_connection_of_both_kinds_of_credential(world):
    oauth = world.call("test_connection")
    assert oauth.data["mode"] == "oauth" and oauth.data["connected_as"] == ALICE_USER
    assert oauth.data["calendars_visible"] == 2
    service = world.bob_call("test_connection")
    assert service.data["mode"] == "service_account" and service.data["connected_as"] == BOB_SA
    assert service.data["calendars_visible"] == 1


def test_it_acts_as_a_workspace_user_through_domain_wide_delegation(world):
    key = world.sandbox.state.add_service_account("dwd@bob-practice.iam.gserviceaccount.com", delegation=True)
    world.bob_account.service_account_key = json.dumps(key)
    world.bob_account.delegated_user = BOB_CALENDAR
    world.bob_account.save()
    answer = world.bob_call("list_calendars")
    assert [c["calendar_id"] for c in answer.data["calendars"]] == [BOB_CALENDAR]
    assert answer.data["calendars"][0]["primary"] is True  # the delegated user's own calendar


def test_it_reports_health_from_the_tenants_credentials(google, world):
    from mcp_servers.gcal.server import GoogleCalendarServer

    server = GoogleCalendarServer()
    assert server.is_configured() and server.health().status == "healthy"
    world.sandbox.state.refresh_tokens.pop(world.alice_account.refresh_token)
    from mcp_servers.gcal.client import forget_credentials

    forget_credentials()
    result = server.health()
    assert result.status == "degraded" and "alice-salon" in result.detail
    assert world.alice_account.refresh_token not in result.detail


def test_it_is_not_configured_in_health_without_any_credential(google, alice):
    from mcp_servers.gcal.server import GoogleCalendarServer

    server = GoogleCalendarServer()
    assert not server.is_configured() and server.health().status == "not_configured"


def test_it_renews_channels_that_expire_within_a_day(world):
    from django.utils import timezone

    from mcp_servers.gcal.tasks import renew_channels

    old = world.call("watch_calendar", {"calendar_id": ALICE_USER}).data["channel_id"]
    far = world.call("watch_calendar", {"calendar_id": world.alice_staff_calendar}).data["channel_id"]
    PushChannel.objects.filter(channel_id=old).update(expires_at=timezone.now() + dt.timedelta(hours=2))
    assert renew_channels() == 1
    assert (
        PushChannel.objects.get(channel_id=old).stopped_at is not None
        and old not in world.sandbox.state.channels
    )
    fresh = PushChannel.objects.filter(calendar__calendar_id=ALICE_USER, stopped_at__isnull=True).get()
    assert (
        fresh.channel_id in world.sandbox.state.channels
        and fresh.expires_at > timezone.now() + dt.timedelta(days=6)
    )
    assert PushChannel.objects.get(channel_id=far).stopped_at is None
