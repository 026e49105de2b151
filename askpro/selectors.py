"""Reads over the tenant domain shared by several MCP servers (each maps them to its own schema)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Avg, Count, Max, Min, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from .models import Branch, Call, Company


class UnknownBranch(LookupError):
    """The branch id does not name a branch of this company."""


def _rounded(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


def call_stats(company: Company, *, days: int, branch_id: int | None = None) -> dict[str, Any]:
    """Calls of one company over the last `days` days: totals, failures, duration, cost, calls
    that led to an appointment, first and last call, and a per-day (UTC) series.

    Three statements whatever the data (four with a branch): the totals with first and last
    call, the calls with an appointment, and the per-day series."""
    calls = Call.objects.filter(company=company, started_at__gte=timezone.now() - dt.timedelta(days=days))
    if branch_id is not None:
        if not Branch.objects.filter(company=company, pk=branch_id).exists():
            raise UnknownBranch(branch_id)
        calls = calls.filter(branch_id=branch_id)
    failed = Q(status=Call.Status.ERROR) | Q(call_successful=False)
    counts = {
        "total": Count("id"),
        "ended": Count("id", filter=Q(status=Call.Status.ENDED)),
        "failed": Count("id", filter=failed),
        "avg_duration": Avg("duration_sec"),
        "cost": Sum("cost"),
    }
    totals = calls.aggregate(
        **counts,
        successful=Count("id", filter=Q(call_successful=True)),
        first=Min("started_at"),
        last=Max("started_at"),
    )
    daily = (
        calls.annotate(day=TruncDate("started_at", tzinfo=dt.UTC))
        .values("day")
        .annotate(**counts)
        .order_by("day")
    )
    return {
        "days": days,
        "total": totals["total"],
        "ended": totals["ended"],
        "failed": totals["failed"],
        "successful": totals["successful"],
        "with_appointment": calls.filter(appointments__isnull=False).values("id").distinct().count(),
        "avg_duration_sec": _rounded(totals["avg_duration"]),
        "total_cost": float(totals["cost"] or 0),
        "first_call_at": totals["first"],
        "last_call_at": totals["last"],
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
