"""Two-way sync between appointments and the staff's Google calendars.

Our side → Google: an appointment that is scheduled or confirmed has one event in its staff
member's calendar (else its branch's), covering the service's buffer before and after; when
the appointment moves, the event moves; when it is cancelled or deleted, the event goes. Every
update and delete sends the ETag we last saw as If-Match.

Google → our side: events made in Google become busy blocks (sync.py) that availability leaves
out. The conflict rule (docs/servers/gcal.md): the booking system is the system of record for
appointment events. A 412 on our write (changed in Google meanwhile: a change on both sides),
or a sync that finds an appointment's event edited or deleted in Google, is resolved by writing
the appointment's state again; each such case is logged as a SyncConflict and in the log.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from django.db import transaction

from askpro.models import Appointment
from mcp_core.contracts import MCPError

from . import client
from .accounts import appointment_event_id, auth_of
from .client import GoogleAuth
from .models import BusyBlock, CalendarLink, EventLink, GoogleAccount, ServiceBuffer, SyncConflict
from .schemas import google_time

logger = logging.getLogger(__name__)
ACTIVE = (Appointment.Status.SCHEDULED, Appointment.Status.CONFIRMED)
BACKGROUND_DEADLINE_S = 20.0
RULE = "the appointment wins: the event was written again from it"


def _status(exc: Exception) -> int | None:
    return getattr(exc, "details", {}).get("upstream_status")


def target_calendar(appointment: Appointment) -> CalendarLink | None:
    """The staff member's calendar, else the branch's own (one without a staff member)."""
    if appointment.staff_id:
        link = CalendarLink.objects.filter(
            company_id=appointment.company_id, staff_id=appointment.staff_id
        ).first()
        if link is not None:
            return link
    if appointment.branch_id:
        return (
            CalendarLink.objects.filter(
                company_id=appointment.company_id, branch_id=appointment.branch_id, staff__isnull=True
            )
            .order_by("pk")
            .first()
        )
    return None


def event_body(appointment: Appointment) -> dict[str, Any]:
    """The event for an appointment: its time widened by the service's buffer."""
    buffer = (
        ServiceBuffer.objects.filter(service_id=appointment.service_id).first()
        if appointment.service_id
        else None
    )
    before = dt.timedelta(minutes=buffer.before_minutes if buffer else 0)
    after = dt.timedelta(minutes=buffer.after_minutes if buffer else 0)
    service = appointment.service.name if appointment.service_id else "Appointment"
    customer = appointment.customer.name if appointment.customer_id and appointment.customer.name else ""
    lines = [f"Booked through AskPro (appointment {appointment.pk})."]
    if before or after:
        lines.append(
            f"Appointment {appointment.starts_at:%H:%M}–{appointment.ends_at:%H:%M}; "
            f"buffer {int(before.total_seconds() // 60)} min before, {int(after.total_seconds() // 60)} min after."
        )
    return {
        "summary": f"{service} · {customer}" if customer else service,
        "description": "\n".join(lines),
        "start": {"dateTime": google_time(appointment.starts_at - before)},
        "end": {"dateTime": google_time(appointment.ends_at + after)},
        "transparency": "opaque",
        "extendedProperties": {"private": {"askpro_appointment": str(appointment.pk)}},
    }


def _account(company_id: int) -> GoogleAuth | None:
    row = GoogleAccount.objects.filter(
        company_id=company_id, two_way_sync=True, company__is_active=True
    ).first()
    return auth_of(row) if row is not None else None


def conflict(
    link: CalendarLink, event_id: str, appointment_id: int | None, kind: str, resolution: str = RULE
) -> None:
    SyncConflict.objects.create(
        company_id=link.company_id, appointment_id=appointment_id, calendar_id=link.calendar_id,
        event_id=event_id, kind=kind, resolution=resolution,
    )  # fmt: skip
    logger.warning(
        "gcal conflict %s on appointment %s (calendar %s): %s", kind, appointment_id, link.pk, resolution
    )


def push_appointment(appointment_id: int, *, deadline: float | None = None) -> str:
    """Make the appointment's event in Google match the appointment; a short note."""
    deadline = deadline or time.monotonic() + BACKGROUND_DEADLINE_S
    appointment = Appointment.objects.select_related("service", "customer").filter(pk=appointment_id).first()
    existing = EventLink.objects.select_related("calendar").filter(appointment_id=appointment_id).first()
    if appointment is None:
        return remove_event(existing.pk, deadline=deadline) if existing else "no appointment"
    auth = _account(appointment.company_id)
    if auth is None:
        return "two-way sync is off or not configured for this tenant"
    target = target_calendar(appointment) if appointment.status in ACTIVE else None
    if existing is not None and (target is None or existing.calendar_id != target.pk):
        remove_event(existing.pk, deadline=deadline)
        existing = None
    if target is None:
        return "no event: the appointment is not active or has no calendar"
    body = event_body(appointment)
    if existing is not None:
        event = _update(auth, existing, body, appointment.pk, deadline)
        link = existing
    else:
        event = _insert(auth, target, body, appointment.pk, deadline)
        link = EventLink(company_id=appointment.company_id, appointment=appointment, calendar=target,
                         event_id=event["id"])  # fmt: skip
    link.etag = str(event.get("etag") or "")
    with transaction.atomic():
        link.save()
        _block(link, appointment, body)
    return f"event {link.event_id} written"


def _insert(
    auth: GoogleAuth, target: CalendarLink, body: dict[str, Any], appointment_id: int, deadline: float
):
    event_id = appointment_event_id(appointment_id)
    try:
        return client.execute(
            None, auth, "insert appointment event",
            lambda s: s.events().insert(calendarId=target.calendar_id, body={**body, "id": event_id}),
            deadline=deadline,
        )  # fmt: skip
    except MCPError as exc:
        if _status(exc) != 409:
            raise
    # The id exists already (an earlier answer was lost, or a cancelled event): write over it.
    return client.execute(
        None, auth, "restore appointment event",
        lambda s: s.events().update(calendarId=target.calendar_id, eventId=event_id, body=body),
        deadline=deadline,
    )  # fmt: skip


def _update(auth: GoogleAuth, link: EventLink, body: dict[str, Any], appointment_id: int, deadline: float):
    calendar_id = link.calendar.calendar_id
    try:
        return client.execute(
            None, auth, "update appointment event",
            lambda s: s.events().update(calendarId=calendar_id, eventId=link.event_id, body=body),
            deadline=deadline, if_match=link.etag or None,
        )  # fmt: skip
    except MCPError as exc:
        status = _status(exc)
        if status not in (404, 410, 412):
            raise
    # Changed (412) or deleted (404/410) in Google since our last write: the rule applies.
    conflict(link.calendar, link.event_id, appointment_id, "changed_on_both_sides")
    return client.execute(
        None, auth, "rewrite appointment event",
        lambda s: s.events().update(calendarId=calendar_id, eventId=link.event_id, body=body),
        deadline=deadline,
    )  # fmt: skip


def _block(link: EventLink, appointment: Appointment, body: dict[str, Any]) -> None:
    """Our own event is busy time at once (not only after the next sync)."""
    BusyBlock.objects.update_or_create(
        calendar_id=link.calendar_id,
        event_id=link.event_id,
        defaults={
            "company_id": link.company_id,
            "starts_at": dt.datetime.fromisoformat(body["start"]["dateTime"].replace("Z", "+00:00")),
            "ends_at": dt.datetime.fromisoformat(body["end"]["dateTime"].replace("Z", "+00:00")),
            "etag": link.etag[:100],
            "appointment_id": appointment.pk,
        },
    )


def remove_event(link_id: int, *, deadline: float | None = None) -> str:
    """Delete an appointment's event (If-Match: a change in Google meanwhile is logged; the
    appointment, gone or cancelled, still wins) and forget the link."""
    deadline = deadline or time.monotonic() + BACKGROUND_DEADLINE_S
    link = EventLink.objects.select_related("calendar").filter(pk=link_id).first()
    if link is None:
        return "no event"
    auth = _account(link.company_id)
    if auth is None:
        return "two-way sync is off or not configured for this tenant"
    calendar_id = link.calendar.calendar_id
    try:
        client.execute(
            None, auth, "delete appointment event",
            lambda s: s.events().delete(calendarId=calendar_id, eventId=link.event_id),
            deadline=deadline, if_match=link.etag or None,
        )  # fmt: skip
    except MCPError as exc:
        status = _status(exc)
        if status == 412:
            conflict(link.calendar, link.event_id, link.appointment_id, "changed_on_both_sides")
            client.execute(
                None, auth, "delete appointment event",
                lambda s: s.events().delete(calendarId=calendar_id, eventId=link.event_id),
                deadline=deadline,
            )  # fmt: skip
        elif status not in (404, 410):
            raise
    with transaction.atomic():
        BusyBlock.objects.filter(calendar_id=link.calendar_id, event_id=link.event_id).delete()
        link.delete()
    return f"event {link.event_id} deleted"


def put_back(link: CalendarLink, appointment_ids: list[int], *, deadline: float | None = None) -> int:
    """After a sync: the appointments whose events were edited in Google get them written
    again (the rule), each logged. Returns how many."""
    done = 0
    if _account(link.company_id) is None:  # two-way sync is off: Google's edit stands
        return done
    for appointment_id in appointment_ids:
        found = EventLink.objects.filter(calendar=link, appointment_id=appointment_id).first()
        conflict(link, found.event_id if found else "", appointment_id, "edited_in_google")
        if found is not None:
            found.etag = ""  # write without If-Match: the rule already decided
            found.save(update_fields=["etag", "synced_at"])
        push_appointment(appointment_id, deadline=deadline)
        done += 1
    return done
