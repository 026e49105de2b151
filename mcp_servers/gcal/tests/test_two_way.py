"""Two-way sync with appointments: an appointment booked by phone appears in its staff
member's calendar (with the service's buffer), moves and disappears with it; events made in
Google block that time for booking; a change on both sides is resolved by the documented rule
(the appointment wins) and logged."""

from __future__ import annotations

import datetime as dt

import pytest

from askpro.models import Appointment, Branch, Staff
from mcp_core.busy_time import BusyQuery, busy_intervals, without_busy
from mcp_servers.gcal.models import BusyBlock, CalendarLink, EventLink, ServiceBuffer, SyncConflict

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2030, 3, 4, 9, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def booked(world, staff, django_capture_on_commit_callbacks):
    """Anna's calendar is the staff calendar; an appointment with her is booked (by phone)."""
    CalendarLink.objects.filter(calendar_id=world.alice_staff_calendar).update(staff=staff)
    service = world.alice.services.get()
    ServiceBuffer.objects.create(company=world.alice, service=service, before_minutes=10, after_minutes=15)
    with django_capture_on_commit_callbacks(execute=True):
        world.appointment = Appointment.objects.create(
            company=world.alice, branch=staff.branch, staff=staff, service=service,
            customer=world.alice.customers.get(), starts_at=T0, ends_at=T0 + dt.timedelta(minutes=30),
        )  # fmt: skip
    world.capture = django_capture_on_commit_callbacks
    return world


def google_event(world):
    link = EventLink.objects.get(appointment=world.appointment)
    return link, world.sandbox.state.calendars[world.alice_staff_calendar].events[link.event_id]


def save(world, **changes):
    for name, value in changes.items():
        setattr(world.appointment, name, value)
    with world.capture(execute=True):
        world.appointment.save()


def test_it_writes_a_booked_appointment_into_the_staff_calendar_with_the_buffer(booked):
    link, event = google_event(booked)
    assert (
        event["start"]["dateTime"] == "2030-03-04T08:50:00Z"
        and event["end"]["dateTime"] == "2030-03-04T09:45:00Z"
    )
    assert event["summary"] == "Consultation · alice-salon Customer"
    assert event["extendedProperties"]["private"]["askpro_appointment"] == str(booked.appointment.pk)
    assert link.etag == event["etag"]
    block = BusyBlock.objects.get(event_id=link.event_id)
    assert block.starts_at == T0 - dt.timedelta(minutes=10) and block.appointment_id == booked.appointment.pk


def test_it_moves_the_event_with_the_appointment_guarded_by_its_etag(booked):
    link, before = google_event(booked)
    before_etag = before["etag"]
    save(booked, starts_at=T0 + 2 * HOUR, ends_at=T0 + 2 * HOUR + dt.timedelta(minutes=30))
    link, after = google_event(booked)
    assert after["start"]["dateTime"] == "2030-03-04T10:50:00Z" and link.etag == after["etag"]
    put = booked.sandbox.requests_to(r"/events/" + link.event_id)[-1]
    assert put.method == "PUT" and put.headers["if-match"] == before_etag
    assert not SyncConflict.objects.exists()


def test_it_removes_the_event_when_the_appointment_is_cancelled_or_deleted(booked):
    link, _ = google_event(booked)
    save(booked, status=Appointment.Status.CANCELLED)
    events = booked.sandbox.state.calendars[booked.alice_staff_calendar].events
    assert events[link.event_id]["status"] == "cancelled"
    assert not EventLink.objects.exists() and not BusyBlock.objects.exists()
    save(booked, status=Appointment.Status.CONFIRMED)  # re-booked: the same event id comes back
    assert events[link.event_id]["status"] == "confirmed"
    with booked.capture(execute=True):
        booked.appointment.delete()
    assert events[link.event_id]["status"] == "cancelled" and not EventLink.objects.exists()


def test_it_moves_the_event_to_the_new_staff_members_calendar(booked):
    link, _ = google_event(booked)
    other = Staff.objects.create(company=booked.alice, branch=booked.appointment.branch, name="Ben")
    ben_calendar = booked.sandbox.state.add_calendar("owner@alice-salon.example", summary="Ben")
    CalendarLink.objects.create(company=booked.alice, calendar_id=ben_calendar, staff=other)
    save(booked, staff=other)
    assert (
        booked.sandbox.state.calendars[booked.alice_staff_calendar].events[link.event_id]["status"]
        == "cancelled"
    )
    assert booked.sandbox.state.calendars[ben_calendar].events[link.event_id]["status"] == "confirmed"
    assert EventLink.objects.get().calendar.calendar_id == ben_calendar


def test_it_resolves_a_change_on_both_sides_for_the_appointment_and_logs_it(booked):
    link, _ = google_event(booked)
    booked.sandbox.edit_event(
        booked.alice_staff_calendar, link.event_id, start=T0 + 5 * HOUR, end=T0 + 6 * HOUR
    )
    save(booked, ends_at=T0 + HOUR)  # our side changes too: the If-Match write gets 412
    _, event = google_event(booked)
    assert (
        event["start"]["dateTime"] == "2030-03-04T08:50:00Z"
        and event["end"]["dateTime"] == "2030-03-04T10:15:00Z"
    )
    conflict = SyncConflict.objects.get()
    assert conflict.kind == "changed_on_both_sides" and conflict.appointment_id == booked.appointment.pk
    assert "appointment wins" in conflict.resolution


def test_it_puts_back_an_appointment_event_edited_or_deleted_in_google_on_sync(booked):
    link, _ = google_event(booked)
    booked.call("sync_calendar", {"calendar_id": booked.alice_staff_calendar})
    booked.sandbox.edit_event(
        booked.alice_staff_calendar, link.event_id, start=T0 + 5 * HOUR, end=T0 + 6 * HOUR
    )
    answer = booked.call("sync_calendar", {"calendar_id": booked.alice_staff_calendar})
    assert answer.data["conflicts"] == 1
    _, event = google_event(booked)
    assert event["start"]["dateTime"] == "2030-03-04T08:50:00Z"
    booked.sandbox.remove_event(booked.alice_staff_calendar, link.event_id)
    booked.call("sync_calendar", {"calendar_id": booked.alice_staff_calendar})
    _, event = google_event(booked)
    assert event["status"] == "confirmed"
    assert [c.kind for c in SyncConflict.objects.order_by("pk")] == ["edited_in_google", "edited_in_google"]
    again = booked.call("sync_calendar", {"calendar_id": booked.alice_staff_calendar})
    assert again.data["conflicts"] == 0  # our own write is not a conflict


def test_it_leaves_appointments_alone_for_a_tenant_without_two_way_sync(booked):
    booked.call("sync_calendar", {"calendar_id": booked.alice_staff_calendar})
    booked.alice_account.two_way_sync = False
    booked.alice_account.save()
    before = len(booked.sandbox.request_log)
    save(booked, starts_at=T0 + HOUR, ends_at=T0 + 2 * HOUR)
    assert len(booked.sandbox.request_log) == before
    link, _ = google_event(booked)
    booked.sandbox.edit_event(
        booked.alice_staff_calendar, link.event_id, start=T0 + 5 * HOUR, end=T0 + 6 * HOUR
    )
    booked.call("sync_calendar", {"calendar_id": booked.alice_staff_calendar})
    _, event = google_event(booked)
    assert event["start"]["dateTime"] == "2030-03-04T14:00:00.000Z" and not SyncConflict.objects.exists()


def test_it_blocks_google_busy_time_for_booking_from_stored_blocks_only(booked, staff):
    booked.sandbox.add_event(
        booked.alice_staff_calendar, start=T0 + 3 * HOUR, end=T0 + 4 * HOUR, summary="Doctor"
    )
    booked.call("sync_calendar", {"calendar_id": booked.alice_staff_calendar})
    requests_before = len(booked.sandbox.request_log)
    query = BusyQuery(booked.alice.pk, T0, T0 + 8 * HOUR, event_type_id=42)  # the branch's event type
    busy = busy_intervals(query)
    assert (T0 + 3 * HOUR, T0 + 4 * HOUR) in busy
    slots = [(T0 + h * HOUR, T0 + h * HOUR + dt.timedelta(minutes=30)) for h in range(8)]
    free = without_busy(slots, query, lambda s: s)
    assert slots[3] not in free and slots[0] not in free and slots[2] in free  # 0: the appointment + buffer
    assert len(booked.sandbox.request_log) == requests_before  # no live call to Google


def test_it_blocks_staff_time_only_where_every_staff_calendar_is_busy(world, staff):
    other = Staff.objects.create(company=world.alice, branch=staff.branch, name="Ben")
    anna = CalendarLink.objects.get(calendar_id=world.alice_staff_calendar)
    anna.staff = staff
    anna.save()
    ben = CalendarLink.objects.create(company=world.alice, calendar_id="ben@alice-salon.example", staff=other)
    for link, start, end in ((anna, 9, 12), (ben, 11, 13)):
        BusyBlock.objects.create(company=world.alice, calendar=link, event_id=f"e{link.pk}",
                                 starts_at=T0.replace(hour=start), ends_at=T0.replace(hour=end))  # fmt: skip
    query = BusyQuery(world.alice.pk, T0, T0 + 8 * HOUR, event_type_id=42)
    assert busy_intervals(query) == [(T0.replace(hour=11), T0.replace(hour=12))]
    branch_calendar = CalendarLink.objects.get(calendar_id="owner@alice-salon.example")
    branch_calendar.branch = staff.branch
    branch_calendar.save()
    BusyBlock.objects.create(company=world.alice, calendar=branch_calendar, event_id="closed",
                             starts_at=T0.replace(hour=14), ends_at=T0.replace(hour=15))  # fmt: skip
    assert (T0.replace(hour=14), T0.replace(hour=15)) in busy_intervals(query)
    other_branch = Branch.objects.create(
        company=world.alice, name="North", slug="north", calcom_event_type_id=77
    )
    assert busy_intervals(BusyQuery(world.alice.pk, T0, T0 + 8 * HOUR, branch_id=other_branch.pk)) == []
    assert busy_intervals(BusyQuery(world.bob.pk, T0, T0 + 8 * HOUR)) == []  # another tenant's time
