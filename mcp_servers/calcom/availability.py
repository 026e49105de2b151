"""Free slots of one event type: the date range a caller may ask for, Cal.com's answer read
into Slots, and the alternatives nearest to a preferred start."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.utils import timezone

from mcp_core.busy_time import BusyQuery, without_busy
from mcp_core.contracts import ErrorCode, MCPError, OperationContext

from .schemas import Alternative, AlternativesResult, CheckAvailabilityParams, FindAlternativesParams, Slot
from .tenancy import Access

MAX_RANGE_DAYS = 31


def date_range(params: CheckAvailabilityParams, tz: ZoneInfo) -> tuple[dt.date, dt.date]:
    """From (default today in tz) and to (default a week later), at most 31 days apart."""
    today = timezone.now().astimezone(tz).date()
    date_from = params.date_from or today
    date_to = params.date_to or date_from + dt.timedelta(days=7)
    if date_to < date_from:
        raise MCPError(
            ErrorCode.VALIDATION_ERROR, "date_to: must not be before date_from", details={"field": "date_to"}
        )
    if (date_to - date_from).days > MAX_RANGE_DAYS:
        raise MCPError(
            ErrorCode.VALIDATION_ERROR,
            f"date_to: at most {MAX_RANGE_DAYS} days after date_from",
            details={"field": "date_to"},
        )
    return date_from, date_to


def slots(
    access: Access,
    ctx: OperationContext,
    event_type_id: int,
    start: dt.date | dt.datetime,
    end: dt.date | dt.datetime,
    tz: ZoneInfo,
) -> list[Slot]:
    """GET /v2/slots (range format), flattened from its per-date keys and sorted by start."""
    data = access.client.slots(event_type_id=event_type_id, start=start, end=end, time_zone=tz.key, ctx=ctx)
    if not isinstance(data, dict):
        raise MCPError(ErrorCode.UPSTREAM_ERROR, "calcom: slots answer is not keyed by date")
    found = []
    for items in data.values():
        for item in items:
            slot_start = dt.datetime.fromisoformat(item["start"])
            slot_end = dt.datetime.fromisoformat(item["end"]) if item.get("end") else slot_start
            found.append(Slot(start=slot_start, end=slot_end))
    found.sort(key=lambda s: s.start)
    if not found:
        return found
    # Time blocked outside Cal.com (e.g. a staff member's Google Calendar) is not offered.
    query = BusyQuery(access.company.pk, found[0].start, max(s.end for s in found), event_type_id)
    return without_busy(found, query, lambda s: (s.start, s.end))


def alternatives(
    access: Access, ctx: OperationContext, params: FindAlternativesParams, tz: ZoneInfo
) -> AlternativesResult:
    """The free slots within search_days of the preferred start (never in the past), nearest first."""
    preferred = params.preferred_start.astimezone(dt.UTC)
    span = dt.timedelta(days=params.search_days)
    window_start = max(preferred - span, timezone.now().astimezone(dt.UTC))
    window_end = preferred + span
    if window_end <= window_start:
        raise MCPError(
            ErrorCode.VALIDATION_ERROR,
            "preferred_start: lies too far in the past to search around",
            details={"field": "preferred_start"},
        )
    free = slots(access, ctx, params.event_type_id, window_start, window_end, tz)
    ranked = sorted(
        (s for s in free if s.start != preferred),
        key=lambda s: (abs((s.start - preferred).total_seconds()), s.start),
    )[: params.max_alternatives]
    return AlternativesResult(
        preferred_start=params.preferred_start,
        preferred_available=any(s.start == preferred for s in free),
        alternatives=[
            Alternative(
                start=s.start,
                end=s.end,
                minutes_from_preferred=round((s.start - preferred).total_seconds() / 60),
                day_of_week=s.start.astimezone(tz).strftime("%A"),
            )
            for s in ranked
        ],
        total_available=len(free),
    )
