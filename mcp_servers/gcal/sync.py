"""Reading a calendar into busy blocks: incremental with Google's sync tokens, full on the
first sync, on request, and when Google answers 410 Gone (the token expired: clear what we
hold for the calendar and read it again, as the API requires).

Each changed event becomes a BusyBlock (or loses it: cancelled, or marked free). An event we
wrote for an appointment that changed in Google is put back as the appointment says (the
conflict rule, docs/servers/gcal.md) and the conflict is logged.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone

from mcp_core.contracts import MCPError, OperationContext

from . import client
from .client import GoogleAuth
from .models import BusyBlock, CalendarLink, EventLink

logger = logging.getLogger(__name__)
PAGE_SIZE = 250
MAX_PAGES = 200  # 50,000 events: beyond that a calendar is not a person's


@dataclass
class SyncOutcome:
    """What one sync did."""

    full: bool = False
    restarted_after_gone: bool = False
    changed: int = 0
    removed: int = 0
    pages: int = 0
    reverted: list[int] = field(default_factory=list)  # appointments whose events were put back

    @property
    def conflicts(self) -> int:
        return len(self.reverted)


def _gone(exc: MCPError) -> bool:
    return exc.details.get("upstream_status") == 410


def _read(ctx, auth: GoogleAuth, link: CalendarLink, sync_token: str, deadline: float):
    """All pages of events.list: the items and the next sync token."""
    items: list[dict[str, Any]] = []
    page_token: str | None = None
    pages = 0
    while True:
        kwargs: dict[str, Any] = {"calendarId": link.calendar_id, "maxResults": PAGE_SIZE}
        if sync_token:
            kwargs["syncToken"] = sync_token
        if page_token:
            kwargs["pageToken"] = page_token
        answer = client.execute(
            ctx, auth, "list events", lambda s, k=kwargs: s.events().list(**k), deadline=deadline
        )
        pages += 1
        items.extend(answer.get("items") or [])
        page_token = answer.get("nextPageToken")
        if not page_token:
            return items, str(answer.get("nextSyncToken") or ""), pages
        if pages >= MAX_PAGES:
            raise MCPError(
                "upstream_error", f"gcal: calendar {link.calendar_id} has more than {MAX_PAGES} pages"
            )


def event_interval(event: dict[str, Any], zone: str) -> tuple[dt.datetime, dt.datetime] | None:
    """An event's start and end (an all-day event spans its dates at midnight in `zone`)."""
    try:
        sides = []
        for side in (event["start"], event["end"]):
            if side.get("dateTime"):
                sides.append(dt.datetime.fromisoformat(side["dateTime"].replace("Z", "+00:00")))
            else:
                day = dt.date.fromisoformat(side["date"])
                sides.append(dt.datetime.combine(day, dt.time(), ZoneInfo(side.get("timeZone") or zone)))
    except (KeyError, ValueError, TypeError, AttributeError):
        return None
    return sides[0], sides[1]


def sync_calendar(
    ctx: OperationContext | None,
    auth: GoogleAuth,
    link: CalendarLink,
    *,
    deadline: float | None = None,
    force_full: bool = False,
    zone: str = "UTC",
) -> SyncOutcome:
    """Incremental when the calendar has a sync token, else full; 410 restarts a full sync."""
    deadline = deadline or (ctx.deadline if ctx else time.monotonic() + 30)
    outcome = SyncOutcome()
    token = "" if force_full else link.sync_token
    items: list[dict[str, Any]] = []
    next_token = ""
    if token:
        try:
            items, next_token, outcome.pages = _read(ctx, auth, link, token, deadline)
        except MCPError as exc:
            if not _gone(exc):
                raise
            logger.warning("gcal calendar %s: sync token gone (410); full sync", link.pk)
            outcome.restarted_after_gone = True
            token = ""
    if not token:
        outcome.full = True
        items, next_token, pages = _read(ctx, auth, link, "", deadline)
        outcome.pages += pages
    with transaction.atomic():
        locked = CalendarLink.objects.select_for_update().get(pk=link.pk)
        if outcome.full:
            seen = {str(e.get("id")) for e in items}
            outcome.removed += (
                BusyBlock.objects.filter(calendar=locked).exclude(event_id__in=seen).delete()[0]
            )
            locked.full_syncs += 1
        for event in items:
            outcome.changed += 1
            outcome.removed += _apply(locked, event, zone, outcome)
        locked.sync_token = next_token
        locked.last_synced_at = timezone.now()
        locked.save(update_fields=["sync_token", "last_synced_at", "full_syncs"])
    link.sync_token, link.full_syncs = locked.sync_token, locked.full_syncs
    return outcome


def _apply(link: CalendarLink, event: dict[str, Any], zone: str, outcome: SyncOutcome) -> int:
    """One changed event into the busy blocks; returns 1 when a block went away."""
    event_id = str(event.get("id") or "")
    if not event_id:
        return 0
    ours = EventLink.objects.filter(calendar=link, event_id=event_id).first()
    if ours is not None and ours.appointment_id and event.get("etag") != ours.etag:
        # Changed in Google since we last wrote it: the appointment wins (put back, logged).
        outcome.reverted.append(ours.appointment_id)
    span = event_interval(event, zone)
    gone = event.get("status") == "cancelled" or event.get("transparency") == "transparent" or span is None
    if gone:
        return min(1, BusyBlock.objects.filter(calendar=link, event_id=event_id).delete()[0])
    BusyBlock.objects.update_or_create(
        calendar=link,
        event_id=event_id,
        defaults={
            "company_id": link.company_id,
            "starts_at": span[0],
            "ends_at": span[1],
            "etag": str(event.get("etag") or "")[:100],
            "appointment_id": ours.appointment_id if ours else None,
        },
    )
    return 0
