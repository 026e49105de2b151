"""Quiet hours per tenant, in the tenant's time zone: a non-urgent message asked for inside them
is deferred to their end, never dropped."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from askpro.models import Company

from .models import MessagingAccount


def tenant_zone(company: Company) -> ZoneInfo:
    try:
        return ZoneInfo(company.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def quiet_until(account: MessagingAccount, now: dt.datetime) -> dt.datetime | None:
    """The end of the quiet hours `now` falls in (aware, UTC), or None outside them.

    start < end is a window within one day (12:00-14:00); start > end spans midnight
    (21:00-08:00). Equal or missing bounds mean no quiet hours."""
    start, end = account.quiet_hours_start, account.quiet_hours_end
    if start is None or end is None or start == end:
        return None
    zone = tenant_zone(account.company)
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    if start < end:
        inside = start <= clock < end
        end_day = local.date()
    else:
        inside = clock >= start or clock < end
        end_day = local.date() + dt.timedelta(days=1) if clock >= start else local.date()
    if not inside:
        return None
    # fold=0 and a normalising round trip: an end inside a DST gap moves to the first real minute.
    ends = dt.datetime.combine(end_day, end, tzinfo=zone)
    return ends.astimezone(dt.UTC)
