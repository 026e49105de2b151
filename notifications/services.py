"""The appointment notifications workflow: plan reminders, hand due ones to workers exactly once,
send confirmations and reminders over the customer's channel with the tenant's fallback order,
and turn a customer's "confirm"/"cancel" reply into a Cal.com change.

Every message goes out through the pipeline (`mcp_core.pipeline.call_for_tenant`) to the
messaging or email operations, with an idempotency key the servers dedupe on; every Cal.com
change through the calcom operations. Nothing here imports a server.

Exactly once, in three steps (docs/reminders.md):
- planning: one row per (appointment, offset, generation) under a unique constraint; a
  reschedule cancels the open rows and plans the next generation;
- handing out: a sweep moves due rows planned -> queued in bulk (SELECT ... FOR UPDATE SKIP
  LOCKED, so two sweeps never take the same row) and queues them to workers in chunks;
- sending: a worker claims each row queued -> sending with one conditional UPDATE, sends with the
  key `reminder:<appointment>:<offset>:<generation>:<channel>`, and finishes it with another. A
  row whose worker died (sending past its lease) is handed out again; the retry reaches the
  server with the same key, which answers with the message already sent instead of a second one.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from askpro.models import Appointment, Company, Customer
from mcp_core import signals
from mcp_core.contracts import ErrorCode, MCPResponse
from mcp_core.pipeline import call_for_tenant

from . import texts
from .models import Notification, NotificationSettings, Reminder

logger = logging.getLogger(__name__)

CALLER = "reminders"
ACTIVE = (Appointment.Status.SCHEDULED, Appointment.Status.CONFIRMED)
OPEN = (Reminder.Status.PLANNED, Reminder.Status.QUEUED)
ACCEPTED = (Notification.Status.SENT, Notification.Status.DEFERRED, Notification.Status.DELIVERED)
KIND_FOR_CHANGE = {
    "booked": Notification.Kind.CONFIRMATION,
    "rescheduled": Notification.Kind.RESCHEDULED,
    "cancelled": Notification.Kind.CANCELLATION,
}
# Failures that say nothing against the channel: the same channel is tried again later.
PASSING = {
    ErrorCode.RATE_LIMITED,
    ErrorCode.CIRCUIT_OPEN,
    ErrorCode.TIMEOUT,
    ErrorCode.INTERNAL_ERROR,
}


def settings_for(company: Company) -> NotificationSettings:
    """The tenant's settings; the defaults (unsaved) for a tenant without a row."""
    found = NotificationSettings.objects.filter(company=company).first()
    return found or NotificationSettings(company=company)


# --- planning ---------------------------------------------------------------------------------


def plan_reminders(appointment_id: int, now: dt.datetime | None = None) -> str:
    """Bring the appointment's reminder plan in line with it: unchanged while its start is the one
    planned for; otherwise the open reminders are cancelled and a new generation is planned (none
    for an appointment no longer active). Runs inside the change's transaction."""
    now = now or timezone.now()
    with transaction.atomic():
        appointment = (
            Appointment.objects.select_for_update()
            .select_related("company")
            .filter(pk=appointment_id)
            .first()
        )
        if appointment is None:
            return "no such appointment"
        rows = Reminder.objects.filter(appointment=appointment)
        latest = rows.aggregate(g=Max("generation"))["g"] or 0
        # The start the current plan is for; none when it was cancelled (the appointment may be
        # active again: it gets a new plan).
        planned_for = (
            rows.filter(generation=latest)
            .exclude(status=Reminder.Status.CANCELLED)
            .values_list("starts_at", flat=True)
            .first()
        )
        conf = settings_for(appointment.company)
        wanted = appointment.status in ACTIVE and conf.reminders_enabled and appointment.company.is_active
        if wanted and latest and planned_for == appointment.starts_at:
            return "unchanged"
        cancelled = rows.filter(status__in=OPEN).update(
            status=Reminder.Status.CANCELLED,
            note=f"appointment {appointment.status}" if not wanted else "appointment moved",
            updated_at=now,
        )
        if not wanted:
            return f"cancelled {cancelled}"
        generation = latest + 1
        new = [
            Reminder(
                company_id=appointment.company_id,
                appointment=appointment,
                offset_minutes=offset,
                generation=generation,
                starts_at=appointment.starts_at,
                due_at=appointment.starts_at - dt.timedelta(minutes=offset),
            )
            for offset in conf.offsets
            if appointment.starts_at - dt.timedelta(minutes=offset) > now
        ]
        if not new:
            # Nothing to remind of any more, but the generation records the start planned for.
            new = [
                Reminder(
                    company_id=appointment.company_id,
                    appointment=appointment,
                    offset_minutes=0,
                    generation=generation,
                    starts_at=appointment.starts_at,
                    due_at=appointment.starts_at,
                    status=Reminder.Status.SKIPPED,
                    note="every offset had passed when it was planned",
                )
            ]
        Reminder.objects.bulk_create(new)
    return f"generation {generation}: {len(new)} planned, {cancelled} cancelled"


def on_appointment_changed(appointment_id: int, change: str) -> None:
    """The receiver's work: replan now (in the change's transaction, in a savepoint so that a
    failure here never undoes the booking), send the message once the change is committed."""
    from .tasks import send_change_message

    try:
        with transaction.atomic():
            plan_reminders(appointment_id)
    except Exception:
        logger.exception("reminders: could not plan appointment %s after %s", appointment_id, change)
    if change in KIND_FOR_CHANGE:
        transaction.on_commit(lambda: send_change_message.delay(appointment_id, change))


# --- delivering one message over the channels ---------------------------------------------------


@dataclass
class Outcome:
    """What delivering one message came to: sent, retry (a passing failure), failed or skipped."""

    result: str
    channel: str = ""
    note: str = ""
    retry_after: float = 0.0


def channel_order(customer: Customer | None, conf: NotificationSettings) -> list[str]:
    """The customer's own channel first, then the tenant's order."""
    order = [customer.preferred_channel] if customer is not None and customer.preferred_channel else []
    return order + [c for c in conf.channels if c not in order]


def _recipient(appointment: Appointment, channel: str) -> str:
    customer = appointment.customer
    if channel == "email":
        return (customer.email if customer else "") or (appointment.metadata or {}).get("attendee_email", "")
    return customer.phone if customer else ""


def _request(
    appointment: Appointment, kind: str, channel: str, to: str, conf: NotificationSettings
) -> tuple[str, str, dict[str, Any]]:
    """(service, operation, params) of one message on one channel."""
    company, customer = appointment.company, appointment.customer
    language = texts.language_of(customer.language if customer else "", company.language)
    if channel == "email":
        params: dict[str, Any] = {
            "to": to,
            "template": kind,
            "appointment_id": appointment.pk,
            "language": language,
        }
        if customer is not None:
            params["customer_id"] = customer.pk
        return "email", "send_email", params
    body = texts.render(
        kind, language, company=company.name, starts_at=appointment.starts_at, zone=company.timezone
    )
    if channel == "whatsapp":
        template = (conf.whatsapp_templates or {}).get(kind)
        if template:
            variables = texts.template_variables(
                language,
                name=customer.name if customer else "",
                starts_at=appointment.starts_at,
                zone=company.timezone,
            )
            return (
                "messaging",
                "send_whatsapp",
                {"to": to, "content_sid": template, "content_variables": variables},
            )
        return "messaging", "send_whatsapp", {"to": to, "body": body}
    return "messaging", "send_sms", {"to": to, "body": body}


def _is_passing(response: MCPResponse) -> bool:
    error = response.error or {}
    code = response.error_code
    details = error.get("details") or {}
    if code == ErrorCode.CONFLICT and details.get("field") == "idempotency_key":
        return True  # the same send is being handled by another worker right now
    if code == ErrorCode.UPSTREAM_ERROR:
        status = details.get("upstream_status")
        return status is None or status >= 500 or status == 429
    return code in PASSING


def _record(
    appointment: Appointment, reminder: Reminder | None, kind: str, channel: str, key: str, **fields: Any
) -> None:
    """Write this attempt's row, one per key (a retry overwrites it): one INSERT ... ON CONFLICT."""
    row = Notification(
        company_id=appointment.company_id,
        idempotency_key=key,
        appointment=appointment,
        reminder=reminder,
        kind=kind,
        channel=channel,
        **fields,
    )
    Notification.objects.bulk_create(
        [row],
        update_conflicts=True,
        unique_fields=["company", "idempotency_key"],
        update_fields=["reminder", *fields.keys(), "updated_at"],
    )


def deliver(
    appointment: Appointment,
    kind: str,
    key_base: str,
    *,
    reminder: Reminder | None = None,
    final: bool = True,
    conf: NotificationSettings | None = None,
    first_try: bool = False,
) -> Outcome:
    """Send one message over the first channel that takes it. A passing failure stops the walk
    (retry later, same keys) unless this is the final attempt. `first_try`: no earlier attempt
    can have recorded anything under these keys (no need to look)."""
    conf = conf or settings_for(appointment.company)
    tried: list[str] = []
    passing: Outcome | None = None
    for channel in channel_order(appointment.customer, conf):
        key = f"{key_base}:{channel}"
        to = _recipient(appointment, channel)
        if not to:
            _record(appointment, reminder, kind, channel, key, status=Notification.Status.SKIPPED,
                    error_message="no phone number" if channel != "email" else "no email address")  # fmt: skip
            tried.append(f"{channel}: no address")
            continue
        if not first_try:
            earlier = Notification.objects.filter(
                company_id=appointment.company_id, idempotency_key=key
            ).first()
            if earlier is not None and earlier.status in ACCEPTED:
                return Outcome("sent", channel, "already sent")
        service, operation, params = _request(appointment, kind, channel, to, conf)
        response = call_for_tenant(
            service, operation, params, tenant_id=appointment.company_id, caller=CALLER, idempotency_key=key
        )
        if response.success:
            data = response.data or {}
            message = data.get("message") or data.get("email") or {}
            status = Notification.Status.DEFERRED if data.get("deferred") else Notification.Status.SENT
            _record(
                appointment, reminder, kind, channel, key,
                status=status, service=service, message_id=message.get("id"),
                recipient=message.get("customer_number") or to, error_code="", error_message="",
                price=message.get("price"), price_unit=message.get("price_unit") or "",
            )  # fmt: skip
            return Outcome("sent", channel, f"{channel}: {status}")
        error = response.error or {}
        code = str(error.get("code"))
        is_passing = _is_passing(response)
        _record(
            appointment, reminder, kind, channel, key,
            status=Notification.Status.FAILED if is_passing else Notification.Status.REFUSED,
            service=service, recipient=to, error_code=code[:30],
            error_message=str(error.get("message") or "")[:500],
        )  # fmt: skip
        tried.append(f"{channel}: {code}")
        if is_passing and not final:
            retry_after = float((error.get("details") or {}).get("retry_after") or 0)
            passing = Outcome("retry", channel, "; ".join(tried), retry_after)
            break
    if passing is not None:
        return passing
    if not tried or all(t.endswith("no address") for t in tried):
        return Outcome("skipped", "", "; ".join(tried) or "no channel")
    return Outcome("failed", "", "; ".join(tried))


def send_change_message(appointment_id: int, change: str, now: dt.datetime | None = None) -> str:
    """The booking, rescheduling or cancellation message, once per appointment and change (and
    start, for a move: two moves to different times are two messages)."""
    now = now or timezone.now()
    appointment = Appointment.objects.select_related("company", "customer").filter(pk=appointment_id).first()
    if appointment is None:
        return "no such appointment"
    if not settings_for(appointment.company).confirmations_enabled:
        return "confirmations are off for this tenant"
    if change != "cancelled" and appointment.status not in ACTIVE:
        return f"not sent: the appointment is {appointment.status}"
    if change == "cancelled" and appointment.status != Appointment.Status.CANCELLED:
        return "not sent: the appointment is no longer cancelled"
    if appointment.starts_at <= now:
        return "not sent: the appointment has begun"
    kind = KIND_FOR_CHANGE[change]
    key = f"{kind}:{appointment.pk}"
    if change == "rescheduled":
        key += f":{int(appointment.starts_at.timestamp())}"
    outcome = deliver(appointment, kind, key)
    return f"{kind}: {outcome.result} ({outcome.note})"


# --- handing out and sending reminders -----------------------------------------------------------


def sweep(now: dt.datetime | None = None, *, dispatch=None) -> dict[str, int]:
    """Hand due reminders to the workers: in bulk, each row to exactly one sweep. Also hands out
    again what a lost task or a dead worker left behind. `dispatch(ids)` queues one chunk
    (default: the send task)."""
    from .tasks import send_reminders

    dispatch = dispatch or (lambda ids: send_reminders.delay(ids))
    started = time.monotonic()
    counts = {"queued": 0, "requeued": 0, "chunks": 0}
    batch, chunk = settings.REMINDERS_SWEEP_BATCH, settings.REMINDERS_SEND_CHUNK
    while time.monotonic() - started < settings.REMINDERS_SWEEP_SECONDS:
        now_ = now or timezone.now()
        due = Q(status=Reminder.Status.PLANNED, due_at__lte=now_)
        stale = Q(
            status=Reminder.Status.QUEUED,
            queued_at__lt=now_ - dt.timedelta(seconds=settings.REMINDERS_QUEUE_LEASE_SECONDS),
        ) | Q(
            status=Reminder.Status.SENDING,
            claimed_at__lt=now_ - dt.timedelta(seconds=settings.REMINDERS_CLAIM_LEASE_SECONDS),
        )
        with transaction.atomic():
            rows = list(
                Reminder.objects.select_for_update(skip_locked=True)
                .filter(due | stale)
                .order_by("due_at")
                .values_list("pk", "status")[:batch]
            )
            ids = [pk for pk, _ in rows]
            if ids:
                Reminder.objects.filter(pk__in=ids).update(
                    status=Reminder.Status.QUEUED, queued_at=now_, updated_at=now_
                )
        if not ids:
            break
        counts["requeued"] += sum(1 for _, status in rows if status != Reminder.Status.PLANNED)
        counts["queued"] += len(ids)
        for i in range(0, len(ids), chunk):
            dispatch(ids[i : i + chunk])
            counts["chunks"] += 1
        if len(ids) < batch:
            break
    return counts


def claim(ids: list[int], now: dt.datetime) -> list[int]:
    """queued -> sending (or sending past its lease: its worker died), for the ids no other worker
    holds: SELECT ... FOR UPDATE SKIP LOCKED and one UPDATE. The ids claimed."""
    lease = now - dt.timedelta(seconds=settings.REMINDERS_CLAIM_LEASE_SECONDS)
    with transaction.atomic():
        claimed = list(
            Reminder.objects.select_for_update(skip_locked=True)
            .filter(pk__in=ids)
            .filter(
                Q(status=Reminder.Status.QUEUED) | Q(status=Reminder.Status.SENDING, claimed_at__lt=lease)
            )
            .values_list("pk", flat=True)
        )
        if claimed:
            Reminder.objects.filter(pk__in=claimed).update(
                status=Reminder.Status.SENDING, claimed_at=now, attempts=F("attempts") + 1, updated_at=now
            )
    return claimed


def send_reminders(ids: list[int]) -> dict[str, int]:
    """Claim these reminders and send each; the ones another worker holds are left to it. The
    claim covers the chunk, so a chunk must take well under REMINDERS_CLAIM_LEASE_SECONDS."""
    now = timezone.now()
    claimed = claim(ids, now)
    counts: dict[str, int] = {"taken": len(ids) - len(claimed)} if len(claimed) < len(ids) else {}
    rows = Reminder.objects.select_related("appointment__company", "appointment__customer").filter(
        pk__in=claimed
    )
    confs: dict[int, NotificationSettings] = {}
    for reminder in rows.order_by("due_at"):
        company = reminder.appointment.company
        conf = confs.get(company.pk) or confs.setdefault(company.pk, settings_for(company))
        result = send_reminder(reminder, now, conf)
        counts[result] = counts.get(result, 0) + 1
    return counts


def send_reminder(reminder: Reminder, claimed_at: dt.datetime, conf: NotificationSettings) -> str:
    """Send one claimed reminder and finish it, conditionally on still holding its claim."""
    appointment = reminder.appointment
    mine = Reminder.objects.filter(pk=reminder.pk, status=Reminder.Status.SENDING, claimed_at=claimed_at)
    now = timezone.now()
    if appointment.status not in ACTIVE or appointment.starts_at != reminder.starts_at:
        mine.update(
            status=Reminder.Status.CANCELLED, note="the appointment was moved or cancelled", updated_at=now
        )
        return "cancelled"
    if appointment.starts_at <= now:
        mine.update(
            status=Reminder.Status.SKIPPED, note="too late: the appointment has begun", updated_at=now
        )
        return "skipped"
    outcome = deliver(
        appointment,
        Notification.Kind.REMINDER,
        reminder.idempotency_base,
        reminder=reminder,
        final=reminder.attempts >= settings.REMINDERS_MAX_ATTEMPTS,
        conf=conf,
        first_try=reminder.attempts == 1,
    )
    done = timezone.now()
    if outcome.result == "sent":
        mine.update(status=Reminder.Status.SENT, sent_at=done, channel=outcome.channel,
                    note=outcome.note[:300], updated_at=done)  # fmt: skip
    elif outcome.result == "retry":
        wait = max(outcome.retry_after, float(settings.REMINDERS_RETRY_SECONDS))
        mine.update(status=Reminder.Status.PLANNED, due_at=done + dt.timedelta(seconds=wait),
                    note=outcome.note[:300], updated_at=done)  # fmt: skip
    else:
        status = Reminder.Status.SKIPPED if outcome.result == "skipped" else Reminder.Status.FAILED
        mine.update(status=status, note=outcome.note[:300], updated_at=done)
    return outcome.result


# --- replies and delivery reports ---------------------------------------------------------------


def handle_reply(company_id: int, number: str, body: str, message_id: int) -> str:
    """A customer's "confirm"/"cancel" (or JA/ABSAGEN, ...) answers the newest reminder sent to
    their number: the booking is confirmed or cancelled through the calcom operations, which
    update the Appointment (and announce it, so a cancellation message and the end of the
    reminders follow)."""
    action = texts.reply_action(body)
    if action is None:
        return "not a reply to a reminder"
    now = timezone.now()
    sent = (
        Notification.objects.filter(
            company_id=company_id,
            recipient=number,
            kind=Notification.Kind.REMINDER,
            status__in=ACCEPTED,
            created_at__gte=now - dt.timedelta(hours=settings.REMINDERS_REPLY_WINDOW_HOURS),
            appointment__status__in=ACTIVE,
            appointment__starts_at__gt=now,
        )
        .select_related("appointment")
        .order_by("-created_at")
        .first()
    )
    if sent is None:
        return f"{action}: no open reminder to {number}"
    appointment = sent.appointment
    key = f"reply:{message_id}"
    if not appointment.calcom_booking_uid:
        # Booked in the admin, not in Cal.com: the local record is all there is.
        with transaction.atomic():
            status = Appointment.Status.CONFIRMED if action == texts.CONFIRM else Appointment.Status.CANCELLED
            Appointment.objects.filter(pk=appointment.pk).update(status=status)
            signals.appointment(
                appointment.pk, company_id, "confirmed" if action == texts.CONFIRM else "cancelled", "reply"
            )
        return f"{action}: appointment {appointment.pk} {status} (not in Cal.com)"
    if action == texts.CONFIRM:
        response = call_for_tenant(
            "calcom", "confirm_booking", {"booking_uid": appointment.calcom_booking_uid, "by_customer": True},
            tenant_id=company_id, caller=CALLER, idempotency_key=key,
        )  # fmt: skip
    else:
        response = call_for_tenant(
            "calcom", "cancel_booking",
            {"booking_uid": appointment.calcom_booking_uid, "reason": "Cancelled by the customer's reply"},
            tenant_id=company_id, caller=CALLER, idempotency_key=key,
        )  # fmt: skip
    if not response.success:
        return f"{action}: appointment {appointment.pk} unchanged ({response.error['code']}: {response.error['message']})"
    return f"{action}: appointment {appointment.pk} through Cal.com"


_STATUS_FROM_PROVIDER = {
    "delivered": Notification.Status.DELIVERED,
    "read": Notification.Status.DELIVERED,
    "undelivered": Notification.Status.UNDELIVERED,
    "failed": Notification.Status.UNDELIVERED,
    "bounced": Notification.Status.UNDELIVERED,  # email
    "complained": Notification.Status.DELIVERED,  # email: it arrived (and was marked as spam)
}


def apply_outbound_update(
    company_id: int, service: str, message_id: int, status: str, price: Decimal | None, price_unit: str
) -> int:
    """A delivery report of a message we asked for: its final status and price, in one UPDATE."""
    updates: dict[str, Any] = {}
    if status in _STATUS_FROM_PROVIDER:
        updates["status"] = _STATUS_FROM_PROVIDER[status]
    if price is not None:
        updates["price"], updates["price_unit"] = price, (price_unit or "")[:3]
    if not updates:
        return 0
    return Notification.objects.filter(company_id=company_id, service=service, message_id=message_id).update(
        **updates, updated_at=timezone.now()
    )
