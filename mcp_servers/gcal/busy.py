"""The Google Calendar server's busy-time source (mcp_core.busy_time): the busy blocks the
last syncs stored, never a live call to Google.

Which calendars count: those of the branch the booked event type belongs to (all of the
tenant's when it belongs to none). A calendar of the branch itself blocks whenever it is busy;
staff members' calendars block a time only when every one of them is busy then (one free
person can still take the appointment)."""

from __future__ import annotations

import datetime as dt

from django.db.models import Q

from askpro.models import Branch, Service
from mcp_core.busy_time import BusyQuery, Interval, busy_source, merge

from .models import BusyBlock, CalendarLink


def _branch_of(query: BusyQuery) -> int | None:
    if query.branch_id or query.event_type_id is None:
        return query.branch_id
    found = (
        Branch.objects.filter(company_id=query.company_id, calcom_event_type_id=query.event_type_id)
        .values_list("pk", flat=True)
        .first()
        or Service.objects.filter(
            company_id=query.company_id, calcom_event_type_id=query.event_type_id, branch__isnull=False
        )
        .values_list("branch_id", flat=True)
        .first()
    )
    return found


def intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    """Where both interval lists (each merged) are busy."""
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def covers(company_id: int) -> bool:
    return CalendarLink.objects.filter(company_id=company_id).exists()


@busy_source("gcal", covers=covers)
def google_busy(query: BusyQuery) -> list[Interval]:
    links = CalendarLink.objects.filter(company_id=query.company_id)
    branch = _branch_of(query)
    if branch is not None:
        links = links.filter(Q(branch_id=branch) | Q(staff__branch_id=branch))
    links = list(links.values_list("pk", "staff_id"))
    if not links:
        return []
    rows = BusyBlock.objects.filter(
        calendar_id__in=[pk for pk, _ in links], starts_at__lt=query.end, ends_at__gt=query.start
    ).values_list("calendar_id", "starts_at", "ends_at")
    per_calendar: dict[int, list[tuple[dt.datetime, dt.datetime]]] = {}
    for calendar_id, start, end in rows:
        per_calendar.setdefault(calendar_id, []).append((start, end))
    blocking = [i for pk, staff in links if staff is None for i in per_calendar.get(pk, [])]
    staff_sets = [merge(per_calendar.get(pk, [])) for pk, staff in links if staff is not None]
    everyone_busy: list[Interval] = staff_sets[0] if staff_sets else []
    for other in staff_sets[1:]:
        everyone_busy = intersect(everyone_busy, other)
    return merge(blocking + everyone_busy)
