"""Each Cal.com operation through the pipeline and the real client against a live sandbox."""

from __future__ import annotations

import datetime as dt

from askpro.models import Appointment, Branch
from mcp_core.registry import get_registry
from mcp_servers.calcom.models import BookingRequest, CalcomEventType
from mcp_servers.calcom.sandbox import DEMO_API_KEY

from .conftest import booking_params, call, weekday_at


def _own_account(calcom, company, key="cal_own_tenant_key"):
    """Give the tenant its own Cal.com account (two demo event types)."""
    calcom.add_account(key, username=company.slug)
    company.calcom_api_key = key
    company.save()
    return key


def test_it_lists_only_mapped_event_types_on_the_shared_account(calcom, alice, alice_key):
    response = call(alice_key, "get_event_types")
    assert response.success, response.error
    assert [e["id"] for e in response.data["event_types"]] == [42]
    assert response.data["event_types"][0]["length_minutes"] == 30


def test_it_lists_every_event_type_of_a_tenants_own_account(calcom, alice, alice_key):
    _own_account(calcom, alice)
    response = call(alice_key, "get_event_types")
    assert response.success, response.error
    assert {e["slug"] for e in response.data["event_types"]} == {"consultation", "haircut"}
    assert calcom.requests_to("/v2/event-types")[-1].headers["cal-api-version"] == "2024-06-14"


def test_it_checks_availability_in_the_requested_time_zone(calcom, alice, alice_key):
    day = weekday_at(9).date()
    response = call(
        alice_key,
        "check_availability",
        {
            "event_type_id": 42,
            "date_from": day.isoformat(),
            "date_to": day.isoformat(),
            "time_zone": "America/New_York",
        },
    )
    assert response.success, response.error
    slots = response.data["slots"]
    # Mon-Fri 09:00-17:00 Berlin in 30-minute steps: 16 slots, shown at New York's offset.
    assert len(slots) == 16 == response.data["count"]
    assert all(s["start"].endswith(("-05:00", "-04:00")) for s in slots)
    assert calcom.requests_to("/v2/slots")[-1].headers["cal-api-version"] == "2024-09-04"


def test_it_leaves_booked_slots_out_of_availability(calcom, alice, alice_key):
    start = weekday_at(10)
    assert call(alice_key, "create_booking", booking_params(start)).success
    day = start.date().isoformat()
    response = call(alice_key, "check_availability", {"event_type_id": 42, "date_from": day, "date_to": day})
    starts = {dt.datetime.fromisoformat(s["start"]) for s in response.data["slots"]}
    assert start not in starts and len(starts) == 15


def test_it_leaves_time_busy_outside_calcom_out_of_availability(calcom, alice, alice_key):
    """A busy-time source (mcp_core.busy_time; the Google Calendar server declares one) hides
    the slots it overlaps, for the tenant and event type it is asked about."""
    from mcp_core.busy_time import BusyQuery, busy_source, forget_source

    start = weekday_at(10)
    asked: list[BusyQuery] = []

    @busy_source("test-busy")
    def busy(query: BusyQuery):
        asked.append(query)
        return [(start, start + dt.timedelta(minutes=45))] if query.company_id == alice.pk else []

    try:
        day = start.date().isoformat()
        response = call(
            alice_key, "check_availability", {"event_type_id": 42, "date_from": day, "date_to": day}
        )
    finally:
        forget_source("test-busy")
    starts = {dt.datetime.fromisoformat(s["start"]) for s in response.data["slots"]}
    assert start not in starts and start + dt.timedelta(minutes=30) not in starts and len(starts) == 14
    assert asked[0].event_type_id == 42


def test_it_refuses_bad_availability_input_naming_the_field_without_calling_upstream(
    calcom, alice, alice_key
):
    bad_zone = call(alice_key, "check_availability", {"event_type_id": 42, "time_zone": "Mars/Olympus"})
    assert bad_zone.error_code == "validation_error" and bad_zone.error["details"]["field"] == "time_zone"
    backwards = call(
        alice_key,
        "check_availability",
        {"event_type_id": 42, "date_from": "2030-01-10", "date_to": "2030-01-01"},
    )
    assert backwards.error["details"]["field"] == "date_to"
    unmapped = call(alice_key, "check_availability", {"event_type_id": 1001})
    assert unmapped.error_code == "not_found" and unmapped.error["details"]["field"] == "event_type_id"
    assert calcom.requests_to("/v2/slots") == []


def test_it_pages_and_filters_bookings(calcom, alice, alice_key):
    for hour in (9, 10, 11):
        assert call(alice_key, "create_booking", booking_params(weekday_at(hour))).success
    assert call(
        alice_key, "create_booking", booking_params(weekday_at(12), email="other@example.com")
    ).success
    first = call(alice_key, "get_bookings", {"take": 2, "attendee_email": "jane@example.com"})
    assert first.success, first.error
    assert len(first.data["bookings"]) == 2
    assert first.data["pagination"] == {
        "total_items": 3,
        "returned_items": 2,
        "take": 2,
        "skip": 0,
        "has_next_page": True,
    }
    second = call(alice_key, "get_bookings", {"take": 2, "skip": 2, "attendee_email": "jane@example.com"})
    assert len(second.data["bookings"]) == 1 and not second.data["pagination"]["has_next_page"]
    starts = [b["start"] for b in first.data["bookings"] + second.data["bookings"]]
    assert starts == sorted(starts)
    assert calcom.requests_to("/v2/bookings")[-1].headers["cal-api-version"] == "2024-08-13"


def test_it_creates_a_booking_and_records_the_appointment(calcom, alice, alice_key):
    start = weekday_at(14)
    response = call(
        alice_key, "create_booking", booking_params(start, notes="first visit", phone="+4915112345678")
    )
    assert response.success, response.error
    booking = response.data["booking"]
    assert booking["status"] == "accepted" and booking["event_type_id"] == 42
    assert dt.datetime.fromisoformat(booking["start"]) == start
    assert booking["metadata"]["askpro_company"] == str(alice.pk)
    appointment = Appointment.objects.get(pk=response.data["appointment_id"])
    assert appointment.company == alice and appointment.calcom_booking_uid == booking["uid"]
    assert appointment.branch.calcom_event_type_id == 42 and appointment.starts_at == start
    sent = calcom.requests_to("^/v2/bookings$")[-1].json()
    assert sent["start"].endswith("Z") and sent["attendee"]["timeZone"] == "Europe/Berlin"


def test_it_books_once_when_the_same_request_comes_twice(calcom, alice, alice_key):
    params = booking_params(weekday_at(15))
    first = call(alice_key, "create_booking", params)
    second = call(alice_key, "create_booking", params)
    assert first.success and second.success, (first.error, second.error)
    assert second.data["replayed"] and not first.data["replayed"]
    assert second.data["booking"]["uid"] == first.data["booking"]["uid"]
    assert len(calcom.requests_to("^/v2/bookings$")) == 1
    assert Appointment.objects.filter(calcom_booking_uid=first.data["booking"]["uid"]).count() == 1


def test_it_books_once_per_idempotency_key_and_refuses_a_reused_key_with_other_params(
    calcom, alice, alice_key
):
    first = call(alice_key, "create_booking", booking_params(weekday_at(9)), idempotency_key="call-77")
    again = call(alice_key, "create_booking", booking_params(weekday_at(9)), idempotency_key="call-77")
    other = call(alice_key, "create_booking", booking_params(weekday_at(10)), idempotency_key="call-77")
    assert again.data["booking"]["uid"] == first.data["booking"]["uid"] and again.data["replayed"]
    assert other.error_code == "conflict" and other.error["details"]["field"] == "idempotency_key"
    assert len(calcom.bookings) == 1


def test_it_maps_a_taken_slot_to_conflict_and_lets_a_retry_try_again(calcom, alice, alice_key):
    start = weekday_at(11)
    assert call(alice_key, "create_booking", booking_params(start)).success
    taken = call(
        alice_key, "create_booking", booking_params(start, email="late@example.com"), idempotency_key="k1"
    )
    assert taken.error_code == "conflict" and taken.error["details"]["upstream_status"] == 409
    assert BookingRequest.objects.get(idempotency_key="k1").status == "failed"
    # The slot frees up; the same key may book now (Cal.com refused the first time, nothing was made).
    calcom.bookings.clear()
    retry = call(
        alice_key, "create_booking", booking_params(start, email="late@example.com"), idempotency_key="k1"
    )
    assert retry.success and not retry.data["replayed"]


def test_it_finds_the_booking_of_an_unanswered_attempt_instead_of_booking_twice(
    calcom, alice, alice_key, monkeypatch
):
    from mcp_servers.calcom.client import CalcomClient

    monkeypatch.setattr(CalcomClient, "read_timeout", 0.3)
    # Cal.com books but answers too late: the caller sees a timeout.
    calcom.inject_fault(path="^/v2/bookings$", delay=0.8, count=1)
    params = booking_params(weekday_at(16))
    lost = call(alice_key, "create_booking", params)
    assert lost.error_code == "timeout"
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)
    while not calcom.bookings and dt.datetime.now(dt.UTC) < deadline:
        pass
    assert len(calcom.bookings) == 1
    assert BookingRequest.objects.get(company=alice).status == "uncertain"
    retry = call(alice_key, "create_booking", params)
    assert retry.success, retry.error
    assert retry.data["booking"]["uid"] == next(iter(calcom.bookings))
    posts = [r for r in calcom.requests_to("^/v2/bookings$") if r.method == "POST"]
    assert len(calcom.bookings) == 1 and len(posts) == 1
    assert Appointment.objects.filter(calcom_booking_uid=retry.data["booking"]["uid"]).exists()


def test_it_reschedules_a_booking_and_the_appointment_follows(calcom, alice, alice_key):
    created = call(alice_key, "create_booking", booking_params(weekday_at(9)))
    old_uid = created.data["booking"]["uid"]
    new_start = weekday_at(13)
    response = call(
        alice_key,
        "reschedule_booking",
        {"booking_uid": old_uid, "start": new_start.isoformat(), "reason": "sick"},
    )
    assert response.success, response.error
    new = response.data["booking"]
    assert (
        new["uid"] != old_uid
        and new["rescheduled_from_uid"] == old_uid
        and response.data["previous_uid"] == old_uid
    )
    assert calcom.bookings[old_uid]["status"] == "cancelled"
    appointment = Appointment.objects.get(pk=created.data["appointment_id"])
    assert appointment.calcom_booking_uid == new["uid"] and appointment.starts_at == new_start


def test_it_cancels_a_booking_once(calcom, alice, alice_key):
    created = call(alice_key, "create_booking", booking_params(weekday_at(10)))
    uid = created.data["booking"]["uid"]
    response = call(alice_key, "cancel_booking", {"booking_uid": uid, "reason": "customer called"})
    assert response.success, response.error
    assert response.data["booking"]["status"] == "cancelled" and response.data["appointment_updated"]
    assert Appointment.objects.get(calcom_booking_uid=uid).status == "cancelled"
    again = call(alice_key, "cancel_booking", {"booking_uid": uid})
    assert again.error_code == "conflict"
    missing = call(alice_key, "cancel_booking", {"booking_uid": "nope123"})
    assert missing.error_code == "not_found" and missing.error["details"]["field"] == "booking_uid"


def test_it_confirms_a_pending_booking_in_calcom_and_an_accepted_one_locally(calcom, alice, alice_key):
    calcom.add_event_type(DEMO_API_KEY, title="Colour", slug="colour", length=30, event_type_id=43,
                          requires_confirmation=True)  # fmt: skip
    Branch.objects.filter(company=alice).update(calcom_event_type_id=43)
    pending = call(alice_key, "create_booking", booking_params(weekday_at(10), event_type_id=43))
    uid = pending.data["booking"]["uid"]
    assert calcom.bookings[uid]["status"] == "pending"
    response = call(alice_key, "confirm_booking", {"booking_uid": uid, "by_customer": True})
    assert response.success, response.error
    assert response.data["confirmed_upstream"] and response.data["booking"]["status"] == "accepted"
    assert calcom.bookings[uid]["status"] == "accepted" and len(calcom.requests_to("/confirm$")) == 1
    appointment = Appointment.objects.get(calcom_booking_uid=uid)
    assert appointment.status == "confirmed" and "confirmed_by_customer_at" in appointment.metadata
    again = call(alice_key, "confirm_booking", {"booking_uid": uid})
    assert again.success and not again.data["confirmed_upstream"]
    assert len(calcom.requests_to("/confirm$")) == 1
    call(alice_key, "cancel_booking", {"booking_uid": uid})
    cancelled = call(alice_key, "confirm_booking", {"booking_uid": uid})
    assert cancelled.error_code == "conflict" and cancelled.error["details"]["reason"] == "cancelled"


def test_it_refuses_a_booking_uid_that_is_not_a_uid(calcom, alice, alice_key):
    response = call(alice_key, "cancel_booking", {"booking_uid": "../event-types/42"})
    assert response.error_code == "validation_error" and response.error["details"]["field"] == "booking_uid"
    assert calcom.request_log == []


def test_it_keeps_tenant_b_away_from_tenant_as_bookings(calcom, alice, alice_key, bob, bob_key):
    created = call(alice_key, "create_booking", booking_params(weekday_at(9)))
    uid = created.data["booking"]["uid"]
    # Both tenants use the shared platform account and the same event type 42.
    cancel = call(bob_key, "cancel_booking", {"booking_uid": uid})
    confirm = call(bob_key, "confirm_booking", {"booking_uid": uid})
    assert confirm.error_code == "not_found"
    move = call(bob_key, "reschedule_booking", {"booking_uid": uid, "start": weekday_at(12).isoformat()})
    assert cancel.error_code == "not_found" and move.error_code == "not_found"
    assert calcom.requests_to("/cancel$") == [] and calcom.requests_to("/reschedule$") == []
    assert calcom.bookings[uid]["status"] == "accepted"
    listed = call(bob_key, "get_bookings")
    assert listed.data["bookings"] == [] and listed.data["hidden_other_tenants"] == 1
    # A platform key acting for bob is bound to bob's bookings just the same.
    assert call(alice_key, "get_bookings").data["bookings"][0]["uid"] == uid


def test_it_ranks_alternatives_nearest_to_the_preferred_start(calcom, alice, alice_key):
    preferred = weekday_at(11)
    assert call(alice_key, "create_booking", booking_params(preferred)).success
    response = call(
        alice_key,
        "find_alternative_slots",
        {
            "event_type_id": 42,
            "preferred_start": preferred.isoformat(),
            "max_alternatives": 3,
            "search_days": 2,
        },
    )
    assert response.success, response.error
    assert response.data["preferred_available"] is False
    assert [a["minutes_from_preferred"] for a in response.data["alternatives"]] == [-30, 30, -60]
    free = call(
        alice_key,
        "find_alternative_slots",
        {"event_type_id": 42, "preferred_start": weekday_at(14).isoformat()},
    )
    assert free.data["preferred_available"] is True


def test_it_syncs_event_types_into_local_records(calcom, alice, alice_key):
    _own_account(calcom, alice)
    first = call(alice_key, "sync_event_types")
    assert first.success, first.error
    assert (first.data["created"], first.data["updated"], first.data["removed"]) == (2, 0, 0)
    owned = [e for e in calcom.event_types.values() if e["slug"] == "haircut" and e["ownerId"] != 1]
    owned[0]["title"] = "Haircut deluxe"
    gone = next(
        e["id"] for e in calcom.event_types.values() if e["slug"] == "consultation" and e["ownerId"] != 1
    )
    del calcom.event_types[gone]
    second = call(alice_key, "sync_event_types")
    assert (second.data["created"], second.data["updated"], second.data["removed"]) == (0, 1, 1)
    assert list(CalcomEventType.objects.filter(company=alice).values_list("title", flat=True)) == [
        "Haircut deluxe"
    ]


def test_it_tests_the_connection_with_the_tenants_own_key_or_the_platform_key(calcom, alice, alice_key):
    platform = call(alice_key, "test_connection")
    assert platform.success and platform.data["credential_source"] == "platform"
    _own_account(calcom, alice)
    own = call(alice_key, "test_connection")
    assert own.data["credential_source"] == "tenant" and own.data["username"] == alice.slug
    assert calcom.requests_to("/v2/me")[-1].headers["authorization"] == "Bearer cal_own_tenant_key"


def test_it_declares_honest_annotations():
    ops = get_registry().get_server("calcom").operations
    assert all(op.annotations.open_world for op in ops.values())
    for name in ("create_booking", "reschedule_booking", "cancel_booking", "sync_event_types"):
        assert not ops[name].annotations.read_only and ops[name].scope_level == "write"
    assert ops["cancel_booking"].annotations.destructive
    assert (
        ops["create_booking"].annotations.idempotent and not ops["reschedule_booking"].annotations.idempotent
    )
    for name in (
        "get_event_types",
        "check_availability",
        "get_bookings",
        "find_alternative_slots",
        "test_connection",
    ):
        assert ops[name].annotations.read_only and ops[name].scope_level == "read"


def test_it_uses_the_platform_key_only_as_a_fallback(calcom, alice, alice_key):
    assert DEMO_API_KEY in calcom.accounts
    call(alice_key, "get_event_types")
    assert calcom.requests_to("/v2/event-types")[-1].headers["authorization"] == f"Bearer {DEMO_API_KEY}"


def test_it_refuses_a_start_without_offset_or_in_the_past_naming_the_field(calcom, alice, alice_key):
    naive = call(
        alice_key, "create_booking", booking_params(weekday_at(9)) | {"start": "2030-01-07T09:00:00"}
    )
    assert naive.error_code == "validation_error" and naive.error["details"]["field"] == "start"
    past = call(alice_key, "create_booking", booking_params(weekday_at(9) - dt.timedelta(days=30)))
    assert past.error_code == "validation_error" and past.error["details"]["field"] == "start"
    assert calcom.request_log == [] and not BookingRequest.objects.exists()


def test_it_maps_a_reschedule_into_a_taken_slot_to_conflict_and_keeps_the_booking(calcom, alice, alice_key):
    first = call(alice_key, "create_booking", booking_params(weekday_at(9))).data["booking"]["uid"]
    call(alice_key, "create_booking", booking_params(weekday_at(10), email="x@example.com"))
    moved = call(alice_key, "reschedule_booking", {"booking_uid": first, "start": weekday_at(10).isoformat()})
    assert moved.error_code == "conflict"
    assert calcom.bookings[first]["status"] == "accepted"
    assert Appointment.objects.get(calcom_booking_uid=first).status == "scheduled"


def test_it_filters_bookings_by_time_range_and_status(calcom, alice, alice_key):
    uids = [
        call(alice_key, "create_booking", booking_params(weekday_at(h))).data["booking"]["uid"]
        for h in (9, 10, 11)
    ]
    call(alice_key, "cancel_booking", {"booking_uid": uids[2]})
    window = {"after_start": weekday_at(10).isoformat(), "before_end": weekday_at(12).isoformat()}
    ranged = call(alice_key, "get_bookings", window)
    assert [b["uid"] for b in ranged.data["bookings"]] == uids[1:]
    upcoming = call(alice_key, "get_bookings", {**window, "status": ["upcoming"]})
    assert [b["uid"] for b in upcoming.data["bookings"]] == [uids[1]]
    cancelled = call(alice_key, "get_bookings", {"status": ["cancelled"]})
    assert [b["uid"] for b in cancelled.data["bookings"]] == [uids[2]]
    assert calcom.requests_to("^/v2/bookings$")[-1].query["status"] == ["cancelled"]
