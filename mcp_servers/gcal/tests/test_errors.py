"""Every upstream failure and bad input mapped to its error code; missing credentials; another
tenant's calendars and channels answered exactly like unknown ones, before Google is asked;
secrets in no answer and no log line."""

from __future__ import annotations

import datetime as dt
import logging
import time

import pytest

from mcp_servers.gcal.models import GoogleAccount, PushChannel

from .conftest import ALICE_USER, BOB_CALENDAR

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2030, 3, 4, 9, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
API = r"^/calendar/v3/"  # faults on the API, not on the token endpoint

CALENDAR_OPERATIONS = {
    "list_events": {},
    "get_free_busy": {"time_min": T0.isoformat(), "time_max": (T0 + HOUR).isoformat()},
    "create_event": {"summary": "x", "start": T0.isoformat(), "end": (T0 + HOUR).isoformat()},
    "update_event": {"event_id": "abcdef123", "summary": "x"},
    "delete_event": {"event_id": "abcdef123"},
    "sync_calendar": {},
    "watch_calendar": {},
}


def calendar_params(operation: str, calendar_id: str) -> dict:
    params = dict(CALENDAR_OPERATIONS[operation])
    if operation == "get_free_busy":
        params["calendar_ids"] = [calendar_id]
    else:
        params["calendar_id"] = calendar_id
    return params


def test_it_is_not_configured_without_google_credentials(google, alice_key, alice):
    from mcp_core.api_keys import api_key_authenticate
    from mcp_core.pipeline import call_operation

    for operation in ("list_calendars", "test_connection"):
        answer = call_operation("gcal", operation, {}, principal=api_key_authenticate(alice_key))
        assert (
            answer.error["code"] == "not_configured" and "connect Google Calendar" in answer.error["message"]
        )
    GoogleAccount.objects.create(
        company=alice, mode="service_account", refresh_token="1//only-oauth-material"
    )
    answer = call_operation("gcal", "test_connection", {}, principal=api_key_authenticate(alice_key))
    assert answer.error["code"] == "not_configured"
    assert google.request_log == []


@pytest.mark.parametrize("operation", sorted(CALENDAR_OPERATIONS))
def test_it_answers_another_tenants_calendar_like_an_unknown_one(world, operation):
    theirs = world.call(operation, calendar_params(operation, BOB_CALENDAR))
    unknown = world.call(operation, calendar_params(operation, "nobody@example.com"))
    assert theirs.error["code"] == unknown.error["code"] == "not_found"
    assert theirs.error["message"].replace(BOB_CALENDAR, "X") == unknown.error["message"].replace(
        "nobody@example.com", "X"
    )
    assert world.sandbox.request_log == []


def test_it_answers_another_tenants_channel_like_an_unknown_one(world):
    bob_channel = world.bob_call("watch_calendar", {"calendar_id": BOB_CALENDAR}).data["channel_id"]
    world.sandbox.request_log.clear()
    theirs = world.call("stop_watch", {"channel_id": bob_channel})
    unknown = world.call("stop_watch", {"channel_id": "0" * 32})
    assert theirs.error["code"] == unknown.error["code"] == "not_found"
    assert (
        world.sandbox.request_log == [] and PushChannel.objects.get(channel_id=bob_channel).stopped_at is None
    )


@pytest.mark.parametrize(
    ("operation", "params", "field"),
    [
        ("list_events", {"calendar_id": ALICE_USER, "time_min": "2030-03-04T09:00:00"}, "time_min"),
        ("list_events", {"calendar_id": ALICE_USER, "time_min": T0.isoformat(), "time_max": T0.isoformat()}, "time_max"),
        ("list_events", {"calendar_id": ALICE_USER, "time_min": T0.isoformat(),
                         "time_max": (T0 + dt.timedelta(days=400)).isoformat()}, "time_max"),
        ("list_events", {"calendar_id": "a/b"}, "calendar_id"),
        ("list_events", {"calendar_id": ALICE_USER, "max_results": 0}, "max_results"),
        ("create_event", {"calendar_id": ALICE_USER, "summary": "x", "start": T0.isoformat(),
                          "end": (T0 - HOUR).isoformat()}, "end"),
        ("create_event", {"calendar_id": ALICE_USER, "summary": "", "start": T0.isoformat(),
                          "end": (T0 + HOUR).isoformat()}, "summary"),
        ("update_event", {"calendar_id": ALICE_USER, "event_id": "abcdef123"}, "summary"),
        ("update_event", {"calendar_id": ALICE_USER, "event_id": "abc/../x", "summary": "x"}, "event_id"),
        ("update_event", {"calendar_id": ALICE_USER, "event_id": "abcdef123", "etag": "x\"y", "summary": "x"}, "etag"),
        ("get_free_busy", {"calendar_ids": [], "time_min": T0.isoformat(), "time_max": T0.isoformat()}, "calendar_ids"),
        ("stop_watch", {"channel_id": "../x"}, "channel_id"),
        ("watch_calendar", {"calendar_id": ALICE_USER, "ttl_seconds": 10}, "ttl_seconds"),
    ],
)  # fmt: skip
def test_it_refuses_bad_input_naming_the_field_before_asking_google(world, operation, params, field):
    answer = world.call(operation, params)
    assert answer.error["code"] == "validation_error", answer.error
    assert field in (answer.error["details"].get("field") or answer.error["message"])
    assert world.sandbox.request_log == []


def test_it_refuses_watching_without_a_public_address(world, settings):
    settings.GCAL_PUBLIC_URL = ""
    answer = world.call("watch_calendar", {"calendar_id": ALICE_USER})
    assert answer.error["code"] == "not_configured" and "GCAL_PUBLIC_URL" in answer.error["message"]


@pytest.mark.parametrize("status", [403, 429])
def test_it_retries_rate_limit_answers_with_backoff_and_then_succeeds(world, status):
    world.sandbox.inject_fault(status=status, count=2, path=API)
    answer = world.call("list_events", {"calendar_id": ALICE_USER})
    assert answer.success, answer.error
    assert len(world.sandbox.requests_to(r"/events$")) == 3


def test_it_gives_up_on_rate_limits_with_rate_limited_after_its_retries(world, settings):
    settings.GCAL_MAX_RETRIES = 2
    world.sandbox.inject_fault(status=429, path=API)
    answer = world.call("list_events", {"calendar_id": ALICE_USER})
    assert answer.error["code"] == "rate_limited" and answer.error["details"]["attempts"] == 3
    assert len(world.sandbox.requests_to(r"/events$")) == 3


def test_it_never_waits_for_a_retry_past_the_calls_deadline(world, settings):
    settings.GCAL_RETRY_BASE_SECONDS = 120.0  # the first backoff alone would outlast the deadline
    world.sandbox.inject_fault(status=403, path=API)
    started = time.monotonic()
    answer = world.call("list_events", {"calendar_id": ALICE_USER})
    assert time.monotonic() - started < 5
    assert answer.error["code"] == "rate_limited" and answer.error["details"]["attempts"] == 1


def test_it_does_not_retry_a_403_that_is_not_a_rate_limit(world):
    body = {"error": {"code": 403, "message": "The user must be signed up for Google Calendar.",
                      "errors": [{"domain": "global", "reason": "forbidden", "message": "x"}]}}  # fmt: skip
    world.sandbox.inject_fault(status=403, body=body, path=API)
    answer = world.call("list_events", {"calendar_id": ALICE_USER})
    assert answer.error["code"] == "forbidden" and len(world.sandbox.requests_to(r"/events$")) == 1


@pytest.mark.parametrize(
    ("status", "code"), [(404, "not_found"), (500, "upstream_error"), (503, "upstream_error")]
)
def test_it_maps_google_failures_to_error_codes(world, status, code):
    world.sandbox.inject_fault(status=status, count=1, path=r"/events$")
    answer = world.call("list_events", {"calendar_id": ALICE_USER})
    assert answer.error["code"] == code and answer.error["details"]["upstream_status"] == status


def test_it_maps_a_stalled_google_to_a_timeout(world, settings):
    world.sandbox.inject_fault(delay=3.0, count=1, path=r"/events$")
    from mcp_servers.gcal import client

    original = client.READ_TIMEOUT
    client.READ_TIMEOUT = 0.5
    try:
        answer = world.call("list_events", {"calendar_id": ALICE_USER})
    finally:
        client.READ_TIMEOUT = original
    assert answer.error["code"] == "timeout"


def test_it_says_a_revoked_refresh_token_is_refused_without_showing_it(world, caplog):
    token = world.alice_account.refresh_token
    world.sandbox.state.refresh_tokens.pop(token)
    with caplog.at_level(logging.DEBUG):
        answer = world.call("list_events", {"calendar_id": ALICE_USER})
    assert (
        answer.error["code"] == "upstream_error"
        and "connect Google Calendar again" in answer.error["message"]
    )
    assert token not in str(answer.to_dict()) and token not in caplog.text


def test_it_refuses_a_service_account_without_delegation_acting_as_a_user(world, caplog):
    world.bob_account.delegated_user = BOB_CALENDAR
    world.bob_account.save()
    with caplog.at_level(logging.DEBUG):
        answer = world.bob_call("test_connection")
    assert answer.error["code"] == "upstream_error" and "unauthorized_client" in answer.error["message"]
    key = world.sa_key["private_key"]
    assert key not in str(answer.to_dict()) and key.splitlines()[1] not in caplog.text


def test_it_keeps_credentials_encrypted_at_rest_and_out_of_the_audit(world):
    from django.db import connection

    from mcp_core.models import AuditEntry

    world.call("test_connection")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT refresh_token FROM mcp_gcal_googleaccount WHERE id = %s", [world.alice_account.pk]
        )
        stored = cursor.fetchone()[0]
    assert stored and world.alice_account.refresh_token not in stored
    audit = " ".join(str(vars(row)) for row in AuditEntry.objects.all())
    assert world.alice_account.refresh_token not in audit
