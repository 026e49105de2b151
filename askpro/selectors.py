"""Reads over the tenant domain shared by several MCP servers (each maps them to its own schema)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Avg, Count, Exists, Max, Min, OuterRef, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from .models import Appointment, Branch, Call, Company


class UnknownBranch(LookupError):
    """The branch id does not name a branch of this company."""


def _rounded(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


def call_stats(company: Company, *, days: int, branch_id: int | None = None) -> dict[str, Any]:
    """Calls of one company over the last `days` days: totals, failures, duration, cost, calls
    that led to an appointment, first and last call, and a per-day (UTC) series.

    One statement whatever the data (two with a branch, checked first): the per-day series,
    whose rows add up to the totals (a call lies in one day, so the calls with an appointment
    add up too)."""
    calls = Call.objects.filter(company=company, started_at__gte=timezone.now() - dt.timedelta(days=days))
    if branch_id is not None:
        if not Branch.objects.filter(company=company, pk=branch_id).exists():
            raise UnknownBranch(branch_id)
        calls = calls.filter(branch_id=branch_id)
    failed = Q(status=Call.Status.ERROR) | Q(call_successful=False)
    # One grouped statement gives the days; the totals are their sums (a day's figures add up
    # exactly: counts, durations and costs are sums, first and last are min and max).
    daily = list(
        calls.annotate(day=TruncDate("started_at", tzinfo=dt.UTC))
        .values("day")
        .annotate(
            total=Count("id"),
            ended=Count("id", filter=Q(status=Call.Status.ENDED)),
            failed=Count("id", filter=failed),
            successful=Count("id", filter=Q(call_successful=True)),
            booked=Count("id", filter=Q(Exists(Appointment.objects.filter(call=OuterRef("pk"))))),
            avg_duration=Avg("duration_sec"),
            duration=Sum("duration_sec"),
            cost=Sum("cost"),
            first=Min("started_at"),
            last=Max("started_at"),
        )
        .order_by("day")
    )
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
                "date": row["day"],
                "total": row["total"],
                "ended": row["ended"],
                "failed": row["failed"],
                "avg_duration_sec": _rounded(row["avg_duration"]),
                "total_cost": float(row["cost"] or 0),
            }
            for row in daily
        ],
    }
