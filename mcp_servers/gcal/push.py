"""Push channels on calendars (events.watch / channels.stop) and their renewal.

A channel is opened to <GCAL_PUBLIC_URL>/webhooks/gcal?tenant=<slug> with a token that is an
HMAC of the channel id under the tenant's push secret (webhooks.channel_token); Google sends
the token back with every notification, which is how one is verified."""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid

from django.conf import settings
from django.utils import timezone

from askpro.models import Company
from mcp_core.contracts import ErrorCode, MCPError, OperationContext

from . import client
from .accounts import account_for, push_secret
from .client import GoogleAuth
from .models import CalendarLink, GoogleAccount, PushChannel
from .webhooks import channel_token

logger = logging.getLogger(__name__)
RENEW_BEFORE = dt.timedelta(days=1)


def address_for(company: Company) -> str:
    if not settings.GCAL_PUBLIC_URL:
        raise MCPError(
            ErrorCode.NOT_CONFIGURED,
            "gcal: GCAL_PUBLIC_URL is not set; Google needs the https address of /webhooks/gcal to push to",
        )
    return f"{settings.GCAL_PUBLIC_URL}/webhooks/gcal?tenant={company.slug}"


def watch(
    ctx: OperationContext | None, row: GoogleAccount, auth: GoogleAuth, link: CalendarLink, ttl_s: int | None,
    *, deadline: float | None = None,
) -> PushChannel:  # fmt: skip
    """Open a channel on the calendar's events; Google confirms it with a "sync" message."""
    address = address_for(row.company)
    channel_id = uuid.uuid4().hex
    ttl = ttl_s or settings.GCAL_CHANNEL_TTL_SECONDS
    body = {
        "id": channel_id,
        "type": "web_hook",
        "address": address,
        "token": channel_token(push_secret(row), channel_id),
        "expiration": str(int((time.time() + ttl) * 1000)),
    }
    answer = client.execute(
        ctx, auth, "watch events", lambda s: s.events().watch(calendarId=link.calendar_id, body=body),
        deadline=deadline,
    )  # fmt: skip
    expires = None
    if str(answer.get("expiration") or "").isdigit():
        expires = dt.datetime.fromtimestamp(int(answer["expiration"]) / 1000, dt.UTC)
    return PushChannel.objects.create(
        company=row.company, calendar=link, channel_id=channel_id,
        resource_id=str(answer.get("resourceId") or "")[:255], expires_at=expires,
    )  # fmt: skip


def stop(
    ctx: OperationContext | None, auth: GoogleAuth, channel: PushChannel, *, deadline: float | None = None
) -> None:
    """Close the channel at Google (already gone there counts as closed) and mark it stopped."""
    body = {"id": channel.channel_id, "resourceId": channel.resource_id}
    try:
        client.execute(ctx, auth, "stop channel", lambda s: s.channels().stop(body=body), deadline=deadline)
    except MCPError as exc:
        if exc.code != ErrorCode.NOT_FOUND:
            raise
    channel.stopped_at = timezone.now()
    channel.save(update_fields=["stopped_at"])


def renew_expiring() -> int:
    """Channels that expire within a day are replaced by new ones (then the old is stopped)."""
    soon = timezone.now() + RENEW_BEFORE
    renewed = 0
    due = PushChannel.objects.filter(stopped_at__isnull=True, expires_at__lt=soon).select_related(
        "calendar", "company"
    )
    for channel in due:
        try:
            row, auth = account_for(channel.company)
            deadline = time.monotonic() + 20
            watch(None, row, auth, channel.calendar, None, deadline=deadline)
            stop(None, auth, channel, deadline=deadline)
            renewed += 1
        except MCPError as exc:
            logger.warning("gcal: channel %s not renewed: %s", channel.pk, exc.message)
    return renewed
