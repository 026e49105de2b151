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
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from askpro.models import Appointment, Company, Customer
from mcp_core import signals
from mcp_core.contracts import ErrorCode, MCPResponse
from mcp_core.db import insert_many
from mcp_core.pipeline import call_for_tenant
from mcp_core.ratelimit import limits_for

from . import texts
from .models import Notification, NotificationSettings, Reminder

# messaging.send_batch takes at most this many messages per call.
BATCH_MAX = 500

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
# What sending a reminder reads of it, its appointment and customer (a chunk loads 500 of each:
# their other columns, timestamps above all, cost a fifth of the load).
REMINDER_FIELDS = [
    "appointment", "offset_minutes", "generation", "starts_at", "attempts", "company",
    "appointment__company", "appointment__customer", "appointment__status", "appointment__starts_at",
    "appointment__metadata", "appointment__customer__name", "appointment__customer__email",
    "appointment__customer__phone", "appointment__customer__language", "appointment__customer__preferred_channel",
]  # fmt: skip
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


# --- delivering messages over the channels -------------------------------------------------------


@dataclass
class Outcome:
    """What delivering one message came to: sent, retry (a passing failure), failed or skipped."""

    result: str
    channel: str = ""
    note: str = ""
    retry_after: float = 0.0


@dataclass
class Job:
    """One message to deliver: to whom (the appointment's customer), what, under which keys, and
    how far along the channel order it has come."""

    appointment: Appointment
    kind: str
    key_base: str
    conf: NotificationSettings
    reminder: Reminder | None = None
    final: bool = True
    first_try: bool = False
    order: list[str] = field(default_factory=list)
    tried: list[str] = field(default_factory=list)
    outcome: Outcome | None = None


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


def _is_passing(code: str, details: dict[str, Any]) -> bool:
    """A failure that says nothing against the channel (try it again later)."""
    if code == ErrorCode.CONFLICT and str(details.get("field") or "").endswith("idempotency_key"):
        return True  # the same send is being handled by another worker right now
    if code == ErrorCode.UPSTREAM_ERROR:
        status = details.get("upstream_status")
        return status is None or status >= 500 or status == 429
    return code in PASSING


@dataclass
class _Answer:
    """One message's answer from a server, whether it came alone or in a batch."""

    ok: bool
    data: dict[str, Any] = field(default_factory=dict)  # the message or email, deferred
    code: str = ""
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def _answer_of(response: MCPResponse) -> _Answer:
    if response.success:
        return _Answer(True, response.data or {})
    error = response.error or {}
    return _Answer(False, code=str(error.get("code")), message=str(error.get("message") or ""),
                   details=error.get("details") or {})  # fmt: skip


def _send_messaging(company: Company, requests: list[tuple[str, str, dict[str, Any]]]) -> list[_Answer]:
    """SMS and WhatsApp messages of one tenant through messaging.send_batch: (channel, key,
    params) -> one answer each. Batches no bigger than the tenant's plan lets one call count."""
    per_call = BATCH_MAX
    per_minute = limits_for(company).per_minute
    if per_minute > 0:
        per_call = min(per_call, per_minute)
    answers: list[_Answer] = []
    for start in range(0, len(requests), per_call):
        part = requests[start : start + per_call]
        messages = [{"channel": channel, **params, "idempotency_key": key} for channel, key, params in part]
        response = call_for_tenant("messaging", "send_batch", {"messages": messages}, tenant_id=company.pk,
                                   caller=CALLER)  # fmt: skip
        if not response.success:  # the whole call was refused (rate limit, no account, ...)
            answers += [_answer_of(response)] * len(part)
            continue
        for item in response.data["results"]:
            if item["ok"]:
                answers.append(_Answer(True, {"message": item["message"], "deferred": item["deferred"]}))
            else:
                error = item["error"]
                details = {k: error[k] for k in ("field", "reason", "upstream_status", "retry_after") if error.get(k) is not None}  # fmt: skip
                answers.append(_Answer(False, code=error["code"], message=error["message"], details=details))
    return answers


def _notification(job: Job, channel: str, key: str, **fields: Any) -> Notification:
    appointment = job.appointment
    return Notification(company_id=appointment.company_id, idempotency_key=key, appointment=appointment,
                        reminder=job.reminder, kind=job.kind, channel=channel, **fields)  # fmt: skip


_NOTIFICATION_FIELDS = ["reminder", "status", "service", "message_id", "recipient", "error_code",
                        "error_message", "price", "price_unit", "updated_at"]  # fmt: skip


def _write(rows: list[Notification]) -> None:
    """Every attempt's row, one per key (a retry overwrites it): one INSERT ... ON CONFLICT."""
    insert_many(rows, unique_fields=["company", "idempotency_key"], update_fields=_NOTIFICATION_FIELDS)


def deliver_many(jobs: list[Job]) -> list[Outcome]:
    """Deliver many messages, each over the first channel that takes it, in rounds: each round
    tries every unfinished message on its next channel, the SMS and WhatsApp ones of a tenant in
    one messaging.send_batch call, emails one by one. A passing failure stops a message's walk
    (retry later, same keys) unless it is the final attempt."""
    for job in jobs:
        job.order = channel_order(job.appointment.customer, job.conf)
    pending = list(jobs)
    while pending:
        rows: list[Notification] = []
        attempts: list[tuple[Job, str, str, str, str, str, dict[str, Any]]] = []
        for job in pending:
            while job.order:
                channel = job.order.pop(0)
                key, to = f"{job.key_base}:{channel}", _recipient(job.appointment, channel)
                if to:
                    service, operation, params = _request(job.appointment, job.kind, channel, to, job.conf)
                    attempts.append((job, channel, key, to, service, operation, params))
                    break
                rows.append(_notification(job, channel, key, status=Notification.Status.SKIPPED,
                                          error_message="no phone number" if channel != "email" else "no email address"))  # fmt: skip
                job.tried.append(f"{channel}: no address")
            else:
                job.outcome = _exhausted(job)
        # A retry looks for an attempt an earlier try (a worker that died) got accepted.
        retried = [a for a in attempts if not a[0].first_try]
        if retried:
            accepted = set(
                Notification.objects.filter(
                    idempotency_key__in=[a[2] for a in retried], status__in=ACCEPTED,
                    company_id__in={a[0].appointment.company_id for a in retried},
                ).values_list("company_id", "idempotency_key")
            )  # fmt: skip
            for job, channel, key, *_ in retried:
                if (job.appointment.company_id, key) in accepted:
                    job.outcome = Outcome("sent", channel, "already sent")
            attempts = [a for a in attempts if a[0].outcome is None]
        answers = _send_all(attempts)
        for (job, channel, key, to, service, _, _), answer in zip(attempts, answers, strict=True):
            if answer.ok:
                sent = answer.data.get("message") or answer.data.get("email") or {}
                status = (
                    Notification.Status.DEFERRED if answer.data.get("deferred") else Notification.Status.SENT
                )
                rows.append(_notification(job, channel, key, status=status, service=service, message_id=sent.get("id"),
                                          recipient=sent.get("customer_number") or to, price=sent.get("price"),
                                          price_unit=sent.get("price_unit") or ""))  # fmt: skip
                job.outcome = Outcome("sent", channel, f"{channel}: {status}")
                continue
            passing = _is_passing(answer.code, answer.details)
            rows.append(_notification(job, channel, key, service=service, recipient=to, error_code=answer.code[:30],
                                      status=Notification.Status.FAILED if passing else Notification.Status.REFUSED,
                                      error_message=answer.message[:500]))  # fmt: skip
            job.tried.append(f"{channel}: {answer.code}")
            if passing and not job.final:
                retry_after = float(answer.details.get("retry_after") or 0)
                job.outcome = Outcome("retry", channel, "; ".join(job.tried), retry_after)
        _write(rows)
        pending = [job for job in pending if job.outcome is None]
    return [job.outcome for job in jobs]  # type: ignore[misc]


def _send_all(attempts: list[tuple]) -> list[_Answer]:
    """One round's messages: SMS and WhatsApp per tenant in batches, emails one by one."""
    answers: list[_Answer | None] = [None] * len(attempts)
    batches: dict[int, list[int]] = {}
    companies: dict[int, Company] = {}
    for i, (job, _, key, _, service, operation, params) in enumerate(attempts):
        if service == "messaging":
            batches.setdefault(job.appointment.company_id, []).append(i)
            companies[job.appointment.company_id] = job.appointment.company
        else:
            response = call_for_tenant(service, operation, params, tenant_id=job.appointment.company_id,
                                       caller=CALLER, idempotency_key=key)  # fmt: skip
            answers[i] = _answer_of(response)
    for company_id, positions in batches.items():
        requests = [(attempts[i][1], attempts[i][2], attempts[i][6]) for i in positions]
        for i, answer in zip(positions, _send_messaging(companies[company_id], requests), strict=True):
            answers[i] = answer
    return answers  # type: ignore[return-value]


def _exhausted(job: Job) -> Outcome:
    """No channel left: skipped when none had an address, failed otherwise."""
    note = "; ".join(job.tried) or "no channel"
    if not job.tried or all(t.endswith("no address") for t in job.tried):
        return Outcome("skipped", "", note)
    return Outcome("failed", "", note)


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
    """Send one message over the first channel that takes it (deliver_many of one)."""
    conf = conf or settings_for(appointment.company)
    job = Job(appointment, kind, key_base, conf, reminder=reminder, final=final, first_try=first_try)
    return deliver_many([job])[0]


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
    """Claim these reminders, send them together (deliver_many: the SMS and WhatsApp ones of a
    tenant in one batch call) and finish them, conditionally on still holding their claim. The
    ones another worker holds are left to it. The claim covers the chunk, so a chunk must take
    well under REMINDERS_CLAIM_LEASE_SECONDS."""
    now = timezone.now()
    claimed = claim(ids, now)
    counts: dict[str, int] = {"taken": len(ids) - len(claimed)} if len(claimed) < len(ids) else {}
    rows = list(
        Reminder.objects.select_related("appointment__customer")
        .only(*REMINDER_FIELDS)
        .filter(pk__in=claimed)
        .order_by("due_at")
    )
    # One Company object per tenant, not one per row: a company row carries encrypted API keys,
    # decrypted on every load.
    companies = Company.objects.in_bulk({r.appointment.company_id for r in rows})
    confs: dict[int, NotificationSettings] = {}
    finished: dict[tuple[str, str, str, float], list[int]] = {}
    jobs: list[Job] = []
    for reminder in rows:
        appointment = reminder.appointment
        appointment.company = companies[appointment.company_id]
        if appointment.status not in ACTIVE or appointment.starts_at != reminder.starts_at:
            finished.setdefault(("cancelled", "", "the appointment was moved or cancelled", 0.0), []).append(
                reminder.pk
            )
            continue
        if appointment.starts_at <= now:
            finished.setdefault(("skipped", "", "too late: the appointment has begun", 0.0), []).append(
                reminder.pk
            )
            continue
        company = appointment.company
        conf = confs.get(company.pk) or confs.setdefault(company.pk, settings_for(company))
        jobs.append(Job(appointment, Notification.Kind.REMINDER, reminder.idempotency_base, conf, reminder=reminder,
                        final=reminder.attempts >= settings.REMINDERS_MAX_ATTEMPTS, first_try=reminder.attempts == 1))  # fmt: skip
    for job, outcome in zip(jobs, deliver_many(jobs), strict=True):
        wait = (
            max(outcome.retry_after, float(settings.REMINDERS_RETRY_SECONDS))
            if outcome.result == "retry"
            else 0.0
        )
        finished.setdefault((outcome.result, outcome.channel, outcome.note[:300], wait), []).append(
            job.reminder.pk
        )
    done = timezone.now()
    status_of = {"sent": Reminder.Status.SENT, "retry": Reminder.Status.PLANNED, "skipped": Reminder.Status.SKIPPED,
                 "failed": Reminder.Status.FAILED, "cancelled": Reminder.Status.CANCELLED}  # fmt: skip
    for (result, channel, note, wait), pks in finished.items():
        updates: dict[str, Any] = {"status": status_of[result], "note": note, "updated_at": done}
        if result == "sent":
            updates.update(sent_at=done, channel=channel)
        elif result == "retry":
            updates["due_at"] = done + dt.timedelta(seconds=wait)
        Reminder.objects.filter(pk__in=pks, status=Reminder.Status.SENDING, claimed_at=now).update(**updates)
        counts[result] = counts.get(result, 0) + len(pks)
    return counts


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
