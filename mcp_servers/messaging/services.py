"""What the messaging server does, apart from its transports: send (now or after quiet hours),
apply Twilio's status callbacks and inbound messages, and sum the costs.

Operations, the Celery task and the webhook handler all call these; none of them holds logic
of its own.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Sum
from django.utils import timezone

from askpro.models import Company
from mcp_core import signals
from mcp_core.contracts import ErrorCode, MCPError, OperationContext
from mcp_core.db import insert_many, update_many
from mcp_core.tenancy import TenantCredentials

from . import client as twilio_api
from . import consent
from .client import TwilioAccount, twilio_client
from .models import FINAL_STATUSES, STATUS_RANK, Message, MessagingAccount
from .numbers import to_e164
from .quiet_hours import quiet_until, tenant_zone

logger = logging.getLogger(__name__)

WHATSAPP_WINDOW = dt.timedelta(hours=24)
# A background send (deferred message, keyword reply) gets this long for its Twilio call.
BACKGROUND_DEADLINE_S = 10.0
# A deferred message whose send failed for a passing reason is tried again this much later.
DEFERRED_RETRY = dt.timedelta(minutes=2)

TWILIO_TOKEN = TenantCredentials(
    service="messaging",
    tenant_field="messaging_account__auth_token",
    platform_setting="",  # no platform account: senders, consent and inbound are per tenant
    what="Twilio auth token",
)


class RetryLater(Exception):
    """A webhook cannot be applied yet (its message is not recorded yet): try again later."""


# --- accounts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """A tenant's messaging account row and its Twilio credentials, resolved once per call."""

    row: MessagingAccount
    twilio: TwilioAccount

    @property
    def company(self) -> Company:
        return self.row.company


def account_for(company: Company) -> Account:
    """The tenant's Twilio account; not_configured, naming what is missing, without one."""
    TWILIO_TOKEN.resolve(company)
    row = company.messaging_account
    missing = [
        label
        for name, label in (("account_sid", "account SID"), ("sender", "SMS sender"))
        if not getattr(row, name)
    ]
    if missing:
        raise MCPError(
            ErrorCode.NOT_CONFIGURED,
            f"messaging: this tenant's Twilio {' and '.join(missing)} are not set; set them in the admin "
            "(Messaging accounts)",
        )
    return Account(row, TwilioAccount(row.account_sid, row.auth_token, row.sender, row.whatsapp_sender))


def is_service_sid(sender: str) -> bool:
    return sender.startswith("MG") and len(sender) == 34


# --- sending --------------------------------------------------------------------------------


@dataclass
class Outgoing:
    """One message to send: the channel, the customer's E.164 number and what to say."""

    channel: str
    to: str
    body: str = ""
    content_sid: str = ""
    content_variables: dict[str, str] = field(default_factory=dict)
    urgent: bool = False

    def same_as(self, m: Message) -> bool:
        return (m.channel, m.customer_number, m.body, m.content_sid, m.content_variables or {}) == (
            self.channel,
            self.to,
            self.body,
            self.content_sid,
            self.content_variables,
        )


def whatsapp_window(company: Company, number: str, now: dt.datetime | None = None) -> dt.datetime | None:
    """When the customer-service window with this customer closes (None: it is closed)."""
    now = now or timezone.now()
    last = (
        Message.objects.filter(
            company=company,
            customer_number=number,
            channel=Message.Channel.WHATSAPP,
            direction=Message.Direction.INBOUND,
            created_at__gt=now - WHATSAPP_WINDOW,
        )
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    return last + WHATSAPP_WINDOW if last else None


def check_whatsapp(account: Account, out: Outgoing, now: dt.datetime, *, window_open: bool | None = None,
                   field: str = "to") -> None:  # fmt: skip
    """WhatsApp's rules for one message: a sender, and free text only inside the customer's
    24-hour window (`window_open` when the caller already knows; otherwise looked up)."""
    if not account.twilio.whatsapp_sender:
        raise MCPError(
            ErrorCode.NOT_CONFIGURED,
            "messaging: this tenant has no WhatsApp sender; set it in the admin (Messaging accounts)",
        )
    if out.content_sid:
        return
    if not out.body:
        raise MCPError(
            ErrorCode.VALIDATION_ERROR,
            "body: give a text (inside the 24-hour window) or content_sid (an approved template)",
            details={"field": "body"},
        )
    if window_open is None:
        window_open = whatsapp_window(account.company, out.to, now) is not None
    if not window_open:
        raise MCPError(
            ErrorCode.CONFLICT,
            f"{field}: {out.to} has not written to this tenant on WhatsApp in the last 24 hours, so WhatsApp "
            "allows no free text; send an approved template (content_sid and content_variables)",
            details={"field": field, "reason": "whatsapp_window_closed"},
        )


def status_callback_url(company: Company) -> str | None:
    if not settings.MESSAGING_PUBLIC_URL:
        return None
    return f"{settings.MESSAGING_PUBLIC_URL}/webhooks/twilio?tenant={company.slug}"


def twilio_create(ctx: OperationContext | None, account: Account, out: Outgoing) -> Any:
    """Ask Twilio to send one message; its MessageInstance."""
    api = twilio_client(account.twilio)
    return twilio_api.call(ctx, "send message", api.messages.create, **create_kwargs(account, out))


def create_kwargs(account: Account, out: Outgoing) -> dict[str, Any]:
    """The library's messages.create arguments for one message."""
    kwargs: dict[str, Any] = {"to": out.to}
    sender = (
        account.twilio.whatsapp_sender if out.channel == Message.Channel.WHATSAPP else account.twilio.sender
    )
    if out.channel == Message.Channel.WHATSAPP:
        kwargs["to"] = f"whatsapp:{out.to}"
    if is_service_sid(sender):
        kwargs["messaging_service_sid"] = sender
    else:
        kwargs["from_"] = f"whatsapp:{sender}" if out.channel == Message.Channel.WHATSAPP else sender
    if out.content_sid:
        kwargs["content_sid"] = out.content_sid
        if out.content_variables:
            kwargs["content_variables"] = json.dumps(out.content_variables)
    else:
        kwargs["body"] = out.body
    callback = status_callback_url(account.company)
    if callback:
        kwargs["status_callback"] = callback
    return kwargs


def _price(value: Any) -> Decimal | None:
    """Twilio reports a charge as a negative decimal string ("-0.07500"); we store the cost."""
    if value in (None, ""):
        return None
    try:
        return abs(Decimal(str(value)))
    except InvalidOperation:
        return None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _apply_sent(message: Message, sent: Any) -> None:
    status = sent.status or "queued"
    message.twilio_sid = sent.sid
    message.status = status
    message.status_rank = STATUS_RANK.get(status, 2)
    message.sender = (getattr(sent, "from_", None) or getattr(sent, "messaging_service_sid", None) or "")[:64]
    message.segments = _int(sent.num_segments)
    message.error_code = _int(sent.error_code)
    message.error_message = (sent.error_message or "")[:500]
    message.price = _price(sent.price)
    message.price_unit = (sent.price_unit or "")[:3].upper()
    message.sent_at = timezone.now()


def send(
    ctx: OperationContext | None, company: Company, out: Outgoing, *, idempotency_key: str = ""
) -> tuple[Message, bool, str]:
    """Send now, or defer to the end of the tenant's quiet hours. (message, deferred, note)."""
    account = account_for(company)
    now = timezone.now()
    consent.ensure_may_message(company, out.to)
    if out.channel == Message.Channel.WHATSAPP:
        check_whatsapp(account, out, now)
    if idempotency_key:
        earlier = Message.objects.filter(company=company, idempotency_key=idempotency_key).first()
        if earlier is not None:
            if not out.same_as(earlier):
                raise MCPError(
                    ErrorCode.CONFLICT,
                    "idempotency_key: already used for another message",
                    details={"field": "idempotency_key"},
                )
            return earlier, earlier.status == "deferred", "the same request was already made: its message"
    message = Message(
        company=company,
        channel=out.channel,
        direction=Message.Direction.OUTBOUND,
        customer_number=out.to,
        body=out.body,
        content_sid=out.content_sid,
        content_variables=out.content_variables,
        urgent=out.urgent,
        idempotency_key=idempotency_key[:255],
    )
    until = None if out.urgent else quiet_until(account.row, now)
    if until is not None:
        message.status, message.status_rank, message.send_after = "deferred", STATUS_RANK["deferred"], until
        _save_new(message)
        local = timezone.localtime(until, tenant_zone(company))
        return message, True, f"quiet hours: deferred until {local:%Y-%m-%d %H:%M %Z}"
    # The row first: it reserves the idempotency key, so two concurrent requests with one key
    # cannot both reach Twilio (creating a message there has no idempotency of its own).
    message.status, message.status_rank = "accepted", STATUS_RANK["accepted"]
    _save_new(message)
    try:
        sent = twilio_create(ctx, account, out)
    except MCPError as exc:
        if _uncertain(exc):
            # Twilio may have taken it: keep the record (a retry with the key returns it
            # instead of texting the customer twice), saying what is unknown.
            Message.objects.filter(pk=message.pk).update(
                error_message=f"no clear answer from Twilio ({exc.code}); it may have been sent"
            )
        else:
            message.delete()  # refused: nothing was sent, nothing stays written
        raise
    _apply_sent(message, sent)
    message.save()
    return message, False, "sent to Twilio"


def _uncertain(exc: MCPError) -> bool:
    """No answer, or Twilio failing on its side: the message may or may not exist there."""
    if exc.details.get("not_attempted"):
        return False
    status = exc.details.get("upstream_status")
    return exc.code == ErrorCode.TIMEOUT or (
        exc.code == ErrorCode.UPSTREAM_ERROR and (status is None or status >= 500)
    )


def _save_new(message: Message) -> None:
    try:
        with transaction.atomic():
            message.save()
    except IntegrityError:
        raise MCPError(
            ErrorCode.CONFLICT,
            "idempotency_key: another request with this key is being handled; try again",
            details={"field": "idempotency_key"},
        ) from None


@dataclass
class BatchOutcome:
    """What became of one message of a batch: its row (sent, deferred, or the one already sent
    with its key) or the error that refused it."""

    message: Message | None = None
    deferred: bool = False
    note: str = ""
    error: MCPError | None = None


def send_batch(
    ctx: OperationContext | None, company: Company, items: list[tuple[str, Outgoing, str]]
) -> list[BatchOutcome]:
    """Send many messages with the rules of `send`, each on its own: (field prefix, message,
    idempotency key) -> one outcome each, in order. What `send` asks per message is asked once
    per batch: one query for consent, one for the WhatsApp windows, one for the keys already
    used, one INSERT of the rows that reserve the keys, the Twilio requests concurrently on
    kept-alive connections, and a few UPDATEs for what Twilio answered."""
    account = account_for(company)
    now = timezone.now()
    outcomes = [BatchOutcome() for _ in items]
    opted_out = consent.opted_out_among(company, {out.to for _, out, _ in items})
    free_whatsapp = {
        out.to for _, out, _ in items if out.channel == Message.Channel.WHATSAPP and not out.content_sid
    }
    open_windows = set()
    if free_whatsapp:
        open_windows = set(
            Message.objects.filter(company=company, customer_number__in=free_whatsapp,
                                   channel=Message.Channel.WHATSAPP, direction=Message.Direction.INBOUND,
                                   created_at__gt=now - WHATSAPP_WINDOW)
            .values_list("customer_number", flat=True).distinct()
        )  # fmt: skip
    keys = [key for _, _, key in items if key]
    earlier = {
        m.idempotency_key: m for m in Message.objects.filter(company=company, idempotency_key__in=keys)
    }
    until = quiet_until(account.row, now)
    new: list[tuple[int, Message]] = []
    for i, (prefix, out, key) in enumerate(items):
        outcome = outcomes[i]
        try:
            if out.to in opted_out:
                raise consent.opted_out_error(company, opted_out[out.to], field=f"{prefix}to")
            if out.channel == Message.Channel.WHATSAPP:
                check_whatsapp(account, out, now, window_open=out.to in open_windows, field=f"{prefix}to")
            if key and key in earlier:
                if not out.same_as(earlier[key]):
                    raise MCPError(ErrorCode.CONFLICT, f"{prefix}idempotency_key: already used for another message",
                                   details={"field": f"{prefix}idempotency_key"})  # fmt: skip
                outcome.message, outcome.deferred = earlier[key], earlier[key].status == "deferred"
                outcome.note = "the same request was already made: its message"
                continue
        except MCPError as exc:
            outcome.error = exc
            continue
        message = Message(company=company, channel=out.channel, direction=Message.Direction.OUTBOUND,
                          customer_number=out.to, body=out.body, content_sid=out.content_sid,
                          content_variables=out.content_variables, urgent=out.urgent, idempotency_key=key[:255])  # fmt: skip
        if until is not None and not out.urgent:
            message.status, message.status_rank, message.send_after = (
                "deferred",
                STATUS_RANK["deferred"],
                until,
            )
            outcome.deferred = True
            outcome.note = f"quiet hours: deferred until {timezone.localtime(until, tenant_zone(company)):%Y-%m-%d %H:%M %Z}"
        else:
            message.status, message.status_rank = "accepted", STATUS_RANK["accepted"]
        new.append((i, message))
    # The rows first, as in `send`: they reserve the keys before anything reaches Twilio.
    _save_new_many([m for _, m in new])
    for i, message in new:
        if message.pk is None:
            outcomes[i].error = MCPError(
                ErrorCode.CONFLICT,
                f"{items[i][0]}idempotency_key: another request with this key is being handled; try again",
                details={"field": f"{items[i][0]}idempotency_key"},
            )
        else:
            outcomes[i].message = message
    to_send = [(i, m) for i, m in new if m.pk is not None and m.status == "accepted"]
    answers = twilio_api.create_many(
        account.twilio,
        [create_kwargs(account, items[i][1]) for i, _ in to_send],
        deadline=ctx.deadline if ctx is not None else time.monotonic() + BACKGROUND_DEADLINE_S,
        concurrency=settings.MESSAGING_BATCH_CONCURRENCY,
    )
    sent: list[Message] = []
    refused: list[int] = []
    uncertain: dict[str, list[int]] = {}
    sent_at = timezone.now()
    for (i, message), answer in zip(to_send, answers, strict=True):
        if isinstance(answer, MCPError):
            outcomes[i].error, outcomes[i].message = answer, None
            if _uncertain(answer):
                note = f"no clear answer from Twilio ({answer.code}); it may have been sent"
                uncertain.setdefault(note, []).append(message.pk)
            else:
                refused.append(message.pk)  # nothing was sent: nothing stays written
            continue
        _apply_sent(message, answer)
        message.sent_at = sent_at  # one time for the batch: its rows are written together
        outcomes[i].note = "sent to Twilio"
        sent.append(message)
    _store_sent(sent)
    if refused:
        Message.objects.filter(pk__in=refused).delete()
    for note, pks in uncertain.items():
        Message.objects.filter(pk__in=pks).update(error_message=note, updated_at=timezone.now())
    return outcomes


def _save_new_many(messages: list[Message]) -> None:
    """INSERT the rows at once. Should a key be taken meanwhile (another request with it is in
    flight), row by row instead: the rows whose key was taken stay without a pk."""
    if not messages:
        return
    try:
        with transaction.atomic():
            insert_many(messages)
    except IntegrityError:
        for message in messages:
            message.pk = None
            try:
                with transaction.atomic():
                    message.save()
            except IntegrityError:
                message.pk = None


def _store_sent(messages: list[Message]) -> None:
    """Write what Twilio answered for a batch (each row its own SID, status, sender, segments,
    price) with one UPDATE: one new version of each row, not one per kind of answer."""
    update_many(messages, ["twilio_sid", "status", "status_rank", "sender", "segments", "error_code",
                           "error_message", "price", "price_unit", "sent_at"])  # fmt: skip


def send_due_deferred(now: dt.datetime | None = None, batch: int | None = None) -> dict[str, int]:
    """Send the deferred messages whose time has come. Each is claimed by one conditional
    update first, so two workers never send one message twice. Consent and the WhatsApp window
    are checked again: they may have changed while the message waited."""
    now = now or timezone.now()
    batch = batch or settings.MESSAGING_DEFERRED_BATCH
    counts = {"sent": 0, "canceled": 0, "failed": 0, "retry": 0}
    due = list(
        Message.objects.filter(status="deferred", send_after__lte=now)
        .order_by("send_after", "pk")
        .values_list("pk", flat=True)[:batch]
    )
    for pk in due:
        claimed = Message.objects.filter(pk=pk, status="deferred").update(
            status="accepted", status_rank=STATUS_RANK["accepted"], updated_at=timezone.now()
        )
        if not claimed:
            continue  # another worker took it
        message = Message.objects.select_related("company").get(pk=pk)
        counts[_send_deferred(message)] += 1
    return counts


def _send_deferred(message: Message) -> str:
    out = Outgoing(
        channel=message.channel,
        to=message.customer_number,
        body=message.body,
        content_sid=message.content_sid,
        content_variables=message.content_variables or {},
        urgent=True,
    )
    try:
        account = account_for(message.company)
        consent.ensure_may_message(message.company, out.to)
        if out.channel == Message.Channel.WHATSAPP:
            check_whatsapp(account, out, timezone.now())
        sent = twilio_create(_background_ctx(), account, out)
    except MCPError as exc:
        if exc.code in (ErrorCode.UPSTREAM_ERROR, ErrorCode.RATE_LIMITED, ErrorCode.NOT_CONFIGURED):
            Message.objects.filter(pk=message.pk).update(
                status="deferred",
                status_rank=STATUS_RANK["deferred"],
                send_after=timezone.now() + DEFERRED_RETRY,
                error_message=exc.message[:500],
            )
            return "retry"
        final = "canceled" if exc.code == ErrorCode.CONFLICT else "failed"
        Message.objects.filter(pk=message.pk).update(
            status=final, status_rank=STATUS_RANK[final], error_message=exc.message[:500]
        )
        logger.info("messaging: deferred message %s not sent: %s", message.pk, exc.code)
        return "canceled" if final == "canceled" else "failed"
    _apply_sent(message, sent)
    message.error_message = message.error_message or ""
    message.save()
    return "sent"


def _background_ctx() -> OperationContext:
    from mcp_core.contracts import SYSTEM_PRINCIPAL, MCPRequest

    request = MCPRequest(
        service="messaging", operation="send_deferred", params={}, principal=SYSTEM_PRINCIPAL
    )
    return OperationContext(request, SYSTEM_PRINCIPAL, None, time.monotonic() + BACKGROUND_DEADLINE_S)


# --- status ---------------------------------------------------------------------------------


def apply_status(company_id: int, sid: str, status: str, error_code: Any = None) -> bool:
    """Apply one status to one message, order-independently: only a higher-ranked status
    replaces the stored one, in one conditional UPDATE (two callbacks at once cannot undo
    each other). True when it changed something."""
    rank = STATUS_RANK.get(status)
    if rank is None:
        return False
    updates: dict[str, Any] = {"status": status, "status_rank": rank, "updated_at": timezone.now()}
    code = _int(error_code)
    if code:
        updates["error_code"] = code
    return bool(
        Message.objects.filter(company_id=company_id, twilio_sid=sid, status_rank__lt=rank).update(**updates)
    )


def refresh_from_twilio(ctx: OperationContext | None, account: Account, message: Message) -> Message:
    """Fetch the message at Twilio: apply its status (by rank) and store the price it reports."""
    if not message.twilio_sid:
        return message
    api = twilio_client(account.twilio)
    fetched = twilio_api.call(ctx, "fetch message", api.messages(message.twilio_sid).fetch)
    apply_status(message.company_id, message.twilio_sid, fetched.status, fetched.error_code)
    price = _price(fetched.price)
    if price is not None:
        Message.objects.filter(pk=message.pk).update(
            price=price, price_unit=(fetched.price_unit or "")[:3].upper()
        )
    if fetched.error_message:
        Message.objects.filter(pk=message.pk, error_message="").update(
            error_message=fetched.error_message[:500]
        )
    message.refresh_from_db()
    return message


def handle_status_callback(company: Company, form: dict[str, str]) -> str:
    """A verified status callback: apply the status; on a final one, fetch the price."""
    sid, status = (
        form.get("MessageSid") or form.get("SmsSid") or "",
        form.get("MessageStatus") or form.get("SmsStatus") or "",
    )
    if not sid or status not in STATUS_RANK:
        return f"ignored: status {status[:20]!r}"
    message = Message.objects.filter(company=company, twilio_sid=sid).first()
    if message is None:
        raise RetryLater(f"message {sid} is not recorded (yet)")
    changed = apply_status(company.pk, sid, status, form.get("ErrorCode"))
    if _int(form.get("ErrorCode")) == 21610:
        consent.set_consent(company, message.customer_number, opted_out=True, keyword="", source="twilio",
                            note="Twilio: recipient unsubscribed (21610)")  # fmt: skip
    if changed:
        note = f"message {message.pk} {status}"
    else:  # what won, read now: another callback may have been applied meanwhile
        message.refresh_from_db(fields=["status", "status_rank"])
        note = f"message {message.pk} kept {message.status} over {status}"
    if status in FINAL_STATUSES and message.price is None:
        try:
            refreshed = refresh_from_twilio(_background_ctx(), account_for(company), message)
            note += f"; price {refreshed.price} {refreshed.price_unit}" if refreshed.price is not None else ""
        except MCPError as exc:  # the price can be fetched later (get_message_status)
            note += f"; price not fetched ({exc.code})"
    if changed or status in FINAL_STATUSES:
        message.refresh_from_db(fields=["status", "price", "price_unit"])
        signals.send(signals.outbound_message_updated, sender="messaging", company_id=company.pk,
                     service="messaging", message_id=message.pk, status=message.status,
                     price=message.price, price_unit=message.price_unit)  # fmt: skip
    return note


# --- inbound --------------------------------------------------------------------------------


def handle_inbound(company: Company, form: dict[str, str]) -> str:
    """A verified inbound message: record it once (by its SID), apply a consent keyword, and
    answer a German keyword with the confirmation a carrier expects."""
    sid = form.get("MessageSid") or form.get("SmsMessageSid") or form.get("SmsSid") or ""
    raw_from = form.get("From") or ""
    if not sid or not raw_from:
        return "ignored: no MessageSid or From"
    channel = Message.Channel.WHATSAPP if raw_from.lower().startswith("whatsapp:") else Message.Channel.SMS
    row = getattr(company, "messaging_account", None)
    try:
        number = to_e164(raw_from, row.country if row else "DE", field="From")
    except MCPError:
        number = raw_from.removeprefix("whatsapp:")[:20]
    body = (form.get("Body") or "")[:1600]
    found = consent.keyword_of(body)
    message, created = Message.objects.get_or_create(
        twilio_sid=sid,
        defaults={
            "company": company,
            "channel": channel,
            "direction": Message.Direction.INBOUND,
            "customer_number": number,
            "sender": (form.get("To") or "")[:64],
            "body": body,
            "status": "received",
            "status_rank": STATUS_RANK["received"],
            "keyword": found[0][:12] if found else "",
        },
    )
    if message.company_id != company.pk:
        return "ignored: this SID is recorded for another tenant"
    if not created:
        return f"message {message.pk} already recorded"
    # Whoever acts on replies (the appointment reminders) learns of it without being imported.
    signals.send(signals.inbound_message_received, sender="messaging", company_id=company.pk,
                 service="messaging", message_id=message.pk, channel=channel, sender_address=number,
                 body=body)  # fmt: skip
    if found is None:
        return f"message {message.pk} received"
    word, action = found
    if action in (consent.OPT_OUT, consent.OPT_IN):
        consent.set_consent(
            company, number, opted_out=action == consent.OPT_OUT, keyword=word, source="keyword"
        )
    note = f"message {message.pk} received: {word} ({action})"
    reply = consent.reply_for(company, word, action)
    if reply:
        note += "; " + _reply(company, number, channel, reply)
    return note


def _reply(company: Company, number: str, channel: str, text: str) -> str:
    """The keyword confirmation: sent even to a customer who just opted out (carriers expect
    exactly this one message) and during quiet hours (it answers the customer's own message)."""
    try:
        account = account_for(company)
        out = Outgoing(channel=channel, to=number, body=text, urgent=True)
        sent = twilio_create(_background_ctx(), account, out)
    except MCPError as exc:
        return f"confirmation not sent ({exc.code})"
    message = Message(company=company, channel=channel, direction=Message.Direction.OUTBOUND,
                      customer_number=number, body=text, urgent=True)  # fmt: skip
    _apply_sent(message, sent)
    message.save()
    return f"confirmation {message.pk} sent"


# --- costs ----------------------------------------------------------------------------------


def month_bounds(company: Company, month: str | None) -> tuple[str, dt.datetime, dt.datetime]:
    """The month (YYYY-MM, default the current one) as [start, end) in the tenant's zone."""
    zone = tenant_zone(company)
    if month:
        year, mon = (int(p) for p in month.split("-"))
    else:
        local = timezone.now().astimezone(zone)
        year, mon = local.year, local.month
    start = dt.datetime(year, mon, 1, tzinfo=zone)
    end = dt.datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=zone)
    return f"{year:04d}-{mon:02d}", start, end


def monthly_costs(company: Company, month: str | None = None) -> tuple[str, list[dict[str, Any]], int, int]:
    """Twilio's prices of the tenant's messages created in one month, summed per currency.
    (month, [{currency, total, messages}], priced, unpriced)."""
    label, start, end = month_bounds(company, month)
    rows = Message.objects.filter(company=company, created_at__gte=start, created_at__lt=end)
    priced = (
        rows.exclude(price=None)
        .values("price_unit")
        .annotate(total=Sum("price"), messages=Count("pk"))
        .order_by("price_unit")
    )
    costs = [
        {"currency": r["price_unit"] or "USD", "total": r["total"], "messages": r["messages"]} for r in priced
    ]
    unpriced = (
        rows.filter(price=None, direction=Message.Direction.OUTBOUND).exclude(status="deferred").count()
    )
    return label, costs, sum(c["messages"] for c in costs), unpriced
