"""Reads over the tenant domain shared by several MCP servers (each maps them to its own schema)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .models import Appointment, Branch, Call, Company


class UnknownBranch(LookupError):
    """The branch id does not name a branch of this company."""


def _rounded(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


def _day(value: Any) -> dt.date:
    # SQLite answers the date and the datetimes of plain SQL as text; PostgreSQL as values.
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


def _moment(value: Any) -> dt.datetime | None:
    if isinstance(value, str):
        value = parse_datetime(value)
        return value if timezone.is_aware(value) else timezone.make_aware(value, dt.UTC)
    return value


def call_stats(company: Company, *, days: int, branch_id: int | None = None) -> dict[str, Any]:
    """Calls of one company over the last `days` days: totals, failures, duration, cost, calls
    that led to an appointment, first and last call, and a per-day (UTC) series.

    One statement whatever the data (two with a branch, checked first): the per-day series,
    whose rows add up to the totals (a call lies in one day, so the calls with an appointment
    add up too). Plain SQL (the day by the backend's own date cast, so SQLite runs it too), not a
    queryset: building it through the ORM cost as much as running it."""
    if branch_id is not None and not Branch.objects.filter(company=company, pk=branch_id).exists():
        raise UnknownBranch(branch_id)
    day, day_params = connection.ops.datetime_cast_date_sql("c.started_at", (), "UTC")
    calls, appointments = Call._meta.db_table, Appointment._meta.db_table
    sql = f"""
        SELECT {day}, count(*), count(*) FILTER (WHERE c.status = %s),
               count(*) FILTER (WHERE c.status = %s OR c.call_successful = %s),
               count(*) FILTER (WHERE c.call_successful = %s),
               count(*) FILTER (WHERE EXISTS (SELECT 1 FROM {appointments} a WHERE a.call_id = c.id)),
               avg(c.duration_sec), sum(c.duration_sec), sum(c.cost), min(c.started_at), max(c.started_at)
        FROM {calls} c
        WHERE c.company_id = %s AND c.started_at >= %s{" AND c.branch_id = %s" if branch_id is not None else ""}
        GROUP BY 1 ORDER BY 1"""
    since = connection.ops.adapt_datetimefield_value(timezone.now() - dt.timedelta(days=days))
    params = [*day_params, Call.Status.ENDED.value, Call.Status.ERROR.value, False, True, company.pk, since]
    if branch_id is not None:
        params.append(branch_id)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [
            "day",
            "total",
            "ended",
            "failed",
            "successful",
            "booked",
            "avg_duration",
            "duration",
            "cost",
        ]
        daily = [
            {**dict(zip(names, row[:9], strict=True)), "first": _moment(row[9]), "last": _moment(row[10])}
            for row in cursor.fetchall()
        ]
    total = sum(row["total"] for row in daily)
    duration = sum(row["duration"] or 0 for row in daily)
    return {
        "days": days,
        "total": total,
        "ended": sum(row["ended"] for row in daily),
        "failed": sum(row["failed"] for row in daily),
        "successful": sum(row["successful"] for row in daily),
        "with_appointment": sum(row["booked"] for row in daily),
        "avg_duration_sec": _rounded(duration / total) if total else None,
        "total_cost": float(sum((row["cost"] or 0) for row in daily)),
        "first_call_at": min((row["first"] for row in daily), default=None),
        "last_call_at": max((row["last"] for row in daily), default=None),
        "daily": [
            {
                "date": _day(row["day"]),
                "total": row["total"],
                "ended": row["ended"],
                "failed": row["failed"],
                "avg_duration_sec": _rounded(row["avg_duration"]),
                "total_cost": float(row["cost"] or 0),
            }
            for row in daily
        ],
    }
