"""Busy time the booking system does not know of, from sources servers declare.

A server whose upstream holds people's time (the Google Calendar server: events made in a
staff member's calendar) registers a source with `@busy_source("gcal")`; availability (the
Cal.com server's free slots) and the inbound-call context ask `busy_intervals()` and leave out
what overlaps. A source answers from what it has stored (a sync keeps it current), never with
a live upstream call: this runs on the hot path. A failing source is logged and skipped, so an
outage of one never hides every slot.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

logger = logging.getLogger(__name__)

Interval = tuple[dt.datetime, dt.datetime]
T = TypeVar("T")


@dataclass(frozen=True)
class BusyQuery:
    """Whose time, and when: a tenant, a window, and what is being booked (a Cal.com event
    type, a branch), so a source can pick the calendars that matter."""

    company_id: int
    start: dt.datetime
    end: dt.datetime
    event_type_id: int | None = None
    branch_id: int | None = None


BusySource = Callable[[BusyQuery], list[Interval]]
Covers = Callable[[int], bool]
_sources: dict[str, BusySource] = {}
_covers: dict[str, Covers] = {}


def busy_source(name: str, *, covers: Covers | None = None) -> Callable[[BusySource], BusySource]:
    """Declare `func(query) -> [(start, end), ...]` as a source of busy time; `covers(company_id)`
    says cheaply whether the source holds anything for a tenant (default: it may)."""

    def decorator(func: BusySource) -> BusySource:
        _sources[name] = func
        _covers[name] = covers or (lambda company_id: True)
        return func

    return decorator


def forget_source(name: str) -> None:
    """Unregister a source (tests that declare their own)."""
    _sources.pop(name, None)
    _covers.pop(name, None)


def sources() -> dict[str, BusySource]:
    return dict(_sources)


def tenant_has_busy_time(company_id: int) -> bool:
    """Whether any source holds busy time for the tenant (so hot paths ask only then)."""
    for name, covers in list(_covers.items()):
        try:
            if covers(company_id):
                return True
        except Exception:
            logger.exception("busy-time source %s failed to say whether it covers a tenant", name)
    return False


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, with overlapping and touching intervals joined."""
    merged: list[list[dt.datetime]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


def busy_intervals(query: BusyQuery) -> list[Interval]:
    """Every source's busy time in the window, merged."""
    found: list[Interval] = []
    for name, source in _sources.items():
        try:
            found.extend(source(query))
        except Exception:  # one broken source must not take availability down
            logger.exception("busy-time source %s failed; its busy time is not applied", name)
    return merge(found)


def without_busy(items: list[T], query: BusyQuery, span: Callable[[T], Interval]) -> list[T]:
    """The items (slots) whose span overlaps no busy interval."""
    if not _sources or not items:
        return items
    busy = busy_intervals(query)
    if not busy:
        return items
    return [item for item in items if not overlaps(span(item), busy)]


def overlaps(span: Interval, busy: list[Interval]) -> bool:
    start, end = span
    if end <= start:  # a slot without a length blocks where its start lies
        end = start + dt.timedelta(microseconds=1)
    return any(b_start < end and start < b_end for b_start, b_end in busy)
