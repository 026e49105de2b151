"""A reporting period in a company's own time zone, and the one before it.

Days are the company's local days: a period from 1 to 31 March covers local midnight of 1 March
up to local midnight of 1 April, and the previous period is the same number of days just before.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.utils import timezone

from askpro.models import Company
from mcp_core.contracts import ErrorCode, MCPError


@dataclass(frozen=True, slots=True)
class Period:
    """[since, until) of local days date_from..date_to, with the previous period of equal length."""

    date_from: dt.date
    date_to: dt.date
    tz: str
    since: dt.datetime
    until: dt.datetime
    previous_from: dt.date
    previous_to: dt.date
    previous_since: dt.datetime

    @property
    def days(self) -> int:
        return (self.date_to - self.date_from).days + 1

    def sql(self) -> dict[str, object]:
        """The bounds as named SQL parameters."""
        return {
            "tz": self.tz,
            "since": self.since,
            "until": self.until,
            "prev_since": self.previous_since,
            "date_from": self.date_from,
            "date_to": self.date_to,
            "prev_from": self.previous_from,
        }


def company_zone(company: Company) -> str:
    try:
        ZoneInfo(company.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return "UTC"  # a bad zone on the record must not make every figure fail
    return company.timezone


def local_today(company: Company) -> dt.date:
    return timezone.now().astimezone(ZoneInfo(company_zone(company))).date()


def _midnight(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=zone)


def _refuse(field: str, message: str) -> MCPError:
    return MCPError(
        ErrorCode.VALIDATION_ERROR,
        f"{field}: {message}",
        details={"field": field, "problem": "invalid_value"},
    )


def resolve_period(
    company: Company,
    date_from: dt.date | None,
    date_to: dt.date | None,
    *,
    default_days: int = 30,
    from_field: str = "date_from",
    to_field: str = "date_to",
) -> Period:
    """The period the caller asked for (default: the last `default_days` local days up to today),
    refused with the field named when it is reversed or longer than ANALYTICS_MAX_PERIOD_DAYS."""
    zone_name = company_zone(company)
    zone = ZoneInfo(zone_name)
    date_to = date_to or (local_today(company) if date_from is None else None)
    if date_to is None:
        date_to = min(date_from + dt.timedelta(days=default_days - 1), dt.date.max - dt.timedelta(days=1))
    if date_from is None:
        date_from = date_to - dt.timedelta(days=default_days - 1)
    if date_from > date_to:
        raise _refuse(from_field, f"{date_from} is after {to_field} {date_to}")
    days = (date_to - date_from).days + 1
    limit = settings.ANALYTICS_MAX_PERIOD_DAYS
    if days > limit:
        raise _refuse(
            to_field, f"the period is {days} days long; at most {limit} days (ANALYTICS_MAX_PERIOD_DAYS)"
        )
    low, high = settings.MCP_PARAMS_MIN_YEAR, settings.MCP_PARAMS_MAX_YEAR
    previous_from = date_from - dt.timedelta(days=days)
    for field, value in ((from_field, previous_from), (to_field, date_to)):
        if not low <= value.year <= high:
            raise _refuse(field, f"the period and the one before it must lie in the years {low} to {high}")
    return Period(
        date_from=date_from,
        date_to=date_to,
        tz=zone_name,
        since=_midnight(date_from, zone),
        until=_midnight(date_to + dt.timedelta(days=1), zone),
        previous_from=previous_from,
        previous_to=date_from - dt.timedelta(days=1),
        previous_since=_midnight(previous_from, zone),
    )
