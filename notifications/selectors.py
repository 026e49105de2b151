"""Figures of the workflow's messages for the dashboard."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Count, Q
from django.utils import timezone

from .models import CHANNELS, Notification

S = Notification.Status


def delivery_rates(
    days: int = 7, now: dt.datetime | None = None, *, tenant_ids: frozenset[int] | None = None
) -> list[dict[str, Any]]:
    """Per channel over the last `days`: messages accepted by the server, refused, delivered and
    undelivered, and the delivery rate (delivered of those with a final delivery status; None
    while no message has one, e.g. email without delivery reports). `tenant_ids`: only those
    tenants' messages (None: every tenant's)."""
    now = now or timezone.now()
    rows = Notification.objects.filter(created_at__gte=now - dt.timedelta(days=days))
    if tenant_ids is not None:
        rows = rows.filter(company_id__in=tenant_ids)
    counts = {
        row["channel"]: row
        for row in rows.values("channel")
        .annotate(
            accepted=Count("pk", filter=Q(status__in=[S.SENT, S.DEFERRED, S.DELIVERED, S.UNDELIVERED])),
            delivered=Count("pk", filter=Q(status=S.DELIVERED)),
            undelivered=Count("pk", filter=Q(status=S.UNDELIVERED)),
            refused=Count("pk", filter=Q(status__in=[S.REFUSED, S.FAILED])),
        )
        .order_by()
    }
    rows = []
    for channel in CHANNELS:
        row = counts.get(channel, {"accepted": 0, "delivered": 0, "undelivered": 0, "refused": 0})
        final = row["delivered"] + row["undelivered"]
        rows.append(
            {
                "channel": channel,
                "accepted": row["accepted"],
                "delivered": row["delivered"],
                "undelivered": row["undelivered"],
                "refused": row["refused"],
                "rate": round(100 * row["delivered"] / final, 1) if final else None,
            }
        )
    return rows
