"""The messaging server: SMS and WhatsApp through each tenant's own Twilio account.

Every message, sent or received, is recorded per tenant (models.Message); reads come from those
records, so one tenant never sees another's messages and a Twilio outage does not hide the
history. Consent, the WhatsApp 24-hour window and quiet hours are checked before Twilio is asked.
"""

from __future__ import annotations

import time

from mcp_core.contracts import ErrorCode, MCPError, OperationContext
from mcp_core.db import keyset_page
from mcp_core.health import HealthResult, HealthStatus, probe_credentials
from mcp_core.schemas import NoParams
from mcp_core.server import MCPServer, operation

from . import client as twilio_api
from . import consent, services
from .client import TwilioAccount, twilio_client
from .models import FINAL_STATUSES, Message, MessagingAccount, OptOut
from .numbers import to_e164
from .schemas import (
    BatchItemError,
    BatchItemResult,
    ConversationParams,
    ConversationResult,
    CostsParams,
    CostsResult,
    CurrencyCost,
    ListMessagesParams,
    ListOptOutsParams,
    MessageList,
    MessageParams,
    MessageResult,
    OptOutList,
    OptOutResult,
    SendBatchParams,
    SendBatchResult,
    SendResult,
    SendSmsParams,
    SendWhatsAppParams,
    SetOptOutParams,
    TestConnectionResult,
    WhatsAppWindow,
    message_info,
    opt_out_info,
)
from .services import TWILIO_TOKEN, BatchOutcome, Outgoing


def _country(company) -> str:
    row = MessagingAccount.objects.filter(company=company).only("country").first()
    return row.country if row else "DE"


def _batch_outgoing(item, country: str, prefix: str) -> Outgoing:
    """One message of a batch, checked as send_sms / send_whatsapp check theirs."""
    to = to_e164(item.to, country, field=f"{prefix}to")
    if item.channel == "sms":
        if item.body is None or item.content_sid is not None:
            raise MCPError(
                ErrorCode.VALIDATION_ERROR,
                f"{prefix}body: an SMS needs a body and takes no content_sid",
                details={"field": f"{prefix}body"},
            )
        return Outgoing(channel="sms", to=to, body=item.body, urgent=item.urgent)
    if item.body is None and item.content_sid is None:
        raise MCPError(
            ErrorCode.VALIDATION_ERROR,
            f"{prefix}body: give a text (inside the 24-hour window) or content_sid (an approved template)",
            details={"field": f"{prefix}body"},
        )
    if item.content_variables and not item.content_sid:
        raise MCPError(
            ErrorCode.VALIDATION_ERROR,
            f"{prefix}content_variables: only with content_sid",
            details={"field": f"{prefix}content_variables"},
        )
    return Outgoing(
        channel="whatsapp",
        to=to,
        body="" if item.content_sid else (item.body or ""),
        content_sid=item.content_sid or "",
        content_variables=dict(item.content_variables or {}),
        urgent=item.urgent,
    )


def _item_result(index: int, outcome: BatchOutcome) -> BatchItemResult:
    error = None
    if outcome.error is not None:
        details = outcome.error.details or {}
        error = BatchItemError(
            code=str(outcome.error.code),
            message=outcome.error.message,
            field=details.get("field"),
            reason=details.get("reason"),
            upstream_status=details.get("upstream_status"),
            retry_after=details.get("retry_after"),
        )
    return BatchItemResult(
        index=index,
        ok=error is None,
        message=message_info(outcome.message) if outcome.message is not None and error is None else None,
        deferred=outcome.deferred and error is None,
        note=outcome.note,
        error=error,
    )


class MessagingServer(MCPServer):
    """SMS and WhatsApp of a tenant through its Twilio account, with consent and quiet hours."""

    name = "messaging"
    description = "SMS and WhatsApp messages to a tenant's customers through the tenant's Twilio account"
    webhooks = "mcp_servers.messaging.webhooks"

    def is_configured(self) -> bool:
        return TWILIO_TOKEN.is_configured()

    def health(self) -> HealthResult:
        """GET the Account resource with a few tenants' credentials (distinct auth tokens)."""
        rows = list(
            MessagingAccount.objects.filter(company__is_active=True)
            .exclude(auth_token="")
            .select_related("company")
            .order_by("pk")[:20]
        )
        checks, seen = [], set()
        for row in rows:
            if row.account_sid and row.auth_token not in seen:
                seen.add(row.auth_token)
                checks.append(row)
            if len(checks) >= 3:
                break
        if not checks:
            return HealthResult(
                HealthStatus.NOT_CONFIGURED, "no tenant has a Twilio account SID and auth token"
            )

        def fetch_account(row) -> None:
            with twilio_api.deadline_at(time.monotonic() + 2.0):
                account = TwilioAccount(row.account_sid, row.auth_token, row.sender, row.whatsapp_sender)
                api = twilio_client(account)
                twilio_api.call(None, "fetch account", api.api.v2010.accounts(row.account_sid).fetch)

        return probe_credentials(
            checks,
            fetch_account,
            describe=lambda row: f"tenant {row.company.slug}",
            answered="{n} account(s) answered",
        )

    # --- sending ---
    @operation(
        description="""Send an SMS to one of the tenant's customers from the tenant's Twilio sender.
        The number is normalised to E.164 (national numbers in the tenant's country). Refused, saying
        why, when the customer opted out. During the tenant's quiet hours a message that is not urgent
        is deferred to their end (status "deferred") and sent then. Idempotent with an Idempotency-Key.""",
        params=SendSmsParams,
        result=SendResult,
        scope="write",
        open_world=True,
    )
    def send_sms(self, ctx: OperationContext, params: SendSmsParams) -> SendResult:
        company = ctx.require_tenant()
        services.account_for(company)
        out = Outgoing(
            channel="sms", to=to_e164(params.to, _country(company)), body=params.body, urgent=params.urgent
        )
        message, deferred, note = services.send(
            ctx, company, out, idempotency_key=ctx.request.idempotency_key or ""
        )
        return SendResult(message=message_info(message), deferred=deferred, note=note)

    @operation(
        description="""Send a WhatsApp message to one of the tenant's customers. Free text (body) only
        inside the 24-hour customer-service window (the customer wrote on WhatsApp in the last 24 hours);
        outside it an approved content template (content_sid, content_variables); otherwise refused with
        reason whatsapp_window_closed. Consent, quiet hours and idempotency as for send_sms.""",
        params=SendWhatsAppParams,
        result=SendResult,
        scope="write",
        open_world=True,
    )
    def send_whatsapp(self, ctx: OperationContext, params: SendWhatsAppParams) -> SendResult:
        company = ctx.require_tenant()
        services.account_for(company)
        if params.body is None and params.content_sid is None:
            raise MCPError(
                ErrorCode.VALIDATION_ERROR,
                "body: give a text (inside the 24-hour window) or content_sid (an approved template)",
                details={"field": "body"},
            )
        if params.content_variables and not params.content_sid:
            raise MCPError(
                ErrorCode.VALIDATION_ERROR,
                "content_variables: only with content_sid",
                details={"field": "content_variables"},
            )
        out = Outgoing(
            channel="whatsapp",
            to=to_e164(params.to, _country(company)),
            body="" if params.content_sid else (params.body or ""),
            content_sid=params.content_sid or "",
            content_variables=dict(params.content_variables or {}),
            urgent=params.urgent,
        )
        message, deferred, note = services.send(
            ctx, company, out, idempotency_key=ctx.request.idempotency_key or ""
        )
        return SendResult(message=message_info(message), deferred=deferred, note=note)

    @operation(
        description="""Send up to 500 SMS and WhatsApp messages in one call (appointment reminders, a
        notice to many customers), each with the rules of send_sms and send_whatsapp: numbers
        normalised, opted-out customers refused, the WhatsApp window, quiet hours, and its own
        idempotency_key (a repeat answers with the message already sent). Each message gets its own
        result, in order: ok with the message (or deferred), or the error that refused it; one bad
        message never stops the others. The batch counts as one call per message against the
        tenant's rate limit.""",
        params=SendBatchParams,
        result=SendBatchResult,
        scope="write",
        open_world=True,
        timeout=60.0,
        weight=lambda params: len(params.messages),
    )
    def send_batch(self, ctx: OperationContext, params: SendBatchParams) -> SendBatchResult:
        company = ctx.require_tenant()
        # No account check here: services.send_batch makes it (also for a batch of bad numbers).
        country = _country(company)
        results: list[BatchItemResult | None] = [None] * len(params.messages)
        items: list[tuple[str, Outgoing, str]] = []
        positions: list[int] = []
        first_with_key: dict[str, int] = {}
        for i, item in enumerate(params.messages):
            prefix = f"messages[{i}]."
            key = item.idempotency_key or ""
            if key in first_with_key:
                raise MCPError(
                    ErrorCode.VALIDATION_ERROR,
                    f"{prefix}idempotency_key: the same as messages[{first_with_key[key]}]'s; each message "
                    "needs its own",
                    details={"field": f"{prefix}idempotency_key"},
                )
            if key:
                first_with_key[key] = i
            try:
                out = _batch_outgoing(item, country, prefix)
            except MCPError as exc:
                results[i] = _item_result(i, BatchOutcome(error=exc))
                continue
            items.append((prefix, out, key))
            positions.append(i)
        for i, outcome in zip(positions, services.send_batch(ctx, company, items), strict=True):
            results[i] = _item_result(i, outcome)
        done = [r for r in results if r is not None]
        return SendBatchResult(
            results=done,
            sent=sum(1 for r in done if r.ok and not r.deferred),
            deferred=sum(1 for r in done if r.deferred),
            failed=sum(1 for r in done if not r.ok),
        )

    # --- reading ---
    @operation(
        description="""One message of this tenant with its status, error and price. Unless refresh is
        false, a message not yet final (or without a price) is first fetched from Twilio; a status never
        moves backwards (a late "sent" does not replace "delivered").""",
        params=MessageParams,
        result=MessageResult,
        scope="read",
        read_only=True,
        open_world=True,
    )
    def get_message_status(self, ctx: OperationContext, params: MessageParams) -> MessageResult:
        company = ctx.require_tenant()
        message = Message.objects.filter(company=company, pk=params.message_id).first()
        if message is None:
            raise MCPError(
                ErrorCode.NOT_FOUND,
                f"message_id: no message {params.message_id}",
                details={"field": "message_id"},
            )
        stale = message.status not in FINAL_STATUSES or message.price is None
        if params.refresh and message.twilio_sid and message.direction == "outbound" and stale:
            message = services.refresh_from_twilio(ctx, services.account_for(company), message)
        return MessageResult(message=message_info(message))

    @operation(
        description="""This tenant's messages, newest first, filtered by direction, channel, status,
        customer number and time; limit per page (at most 200) and next_cursor for the next page.""",
        params=ListMessagesParams,
        result=MessageList,
        scope="read",
        read_only=True,
    )
    def list_messages(self, ctx: OperationContext, params: ListMessagesParams) -> MessageList:
        company = ctx.require_tenant()
        rows = Message.objects.filter(company=company)
        if params.since and params.until and params.since >= params.until:
            raise MCPError(
                ErrorCode.VALIDATION_ERROR, "until: must be after since", details={"field": "until"}
            )
        for name in ("direction", "channel", "status"):
            value = getattr(params, name)
            if value is not None:
                rows = rows.filter(**{name: value})
        if params.customer_number is not None:
            rows = rows.filter(
                customer_number=to_e164(params.customer_number, _country(company), field="customer_number")
            )
        if params.since is not None:
            rows = rows.filter(created_at__gte=params.since)
        if params.until is not None:
            rows = rows.filter(created_at__lt=params.until)
        found, cursor = keyset_page(rows, params.limit, params.cursor)
        return MessageList(messages=[message_info(m) for m in found], next_cursor=cursor)

    @operation(
        description="""One customer's thread with this tenant: messages in both directions on both
        channels, oldest first (next_cursor pages to older ones), whether the customer opted out and
        whether the WhatsApp 24-hour window is open.""",
        params=ConversationParams,
        result=ConversationResult,
        scope="read",
        read_only=True,
    )
    def get_conversation(self, ctx: OperationContext, params: ConversationParams) -> ConversationResult:
        company = ctx.require_tenant()
        number = to_e164(params.customer_number, _country(company), field="customer_number")
        found, cursor = keyset_page(
            Message.objects.filter(company=company, customer_number=number), params.limit, params.cursor
        )
        closes = services.whatsapp_window(company, number)
        return ConversationResult(
            customer_number=number,
            opted_out=consent.opt_out_of(company, number) is not None,
            whatsapp_window=WhatsAppWindow(open=closes is not None, closes_at=closes),
            messages=[message_info(m) for m in reversed(found)],
            next_cursor=cursor,
        )

    # --- consent ---
    @operation(
        description="""Customers who opted out of this tenant's messages (STOP, STOPP, an operator or
        Twilio), newest change first; include_opted_in also lists those who opted back in.""",
        params=ListOptOutsParams,
        result=OptOutList,
        scope="read",
        read_only=True,
    )
    def list_opt_outs(self, ctx: OperationContext, params: ListOptOutsParams) -> OptOutList:
        company = ctx.require_tenant()
        rows = OptOut.objects.filter(company=company)
        if not params.include_opted_in:
            rows = rows.filter(opted_out=True)
        found, cursor = keyset_page(rows, params.limit, params.cursor)
        return OptOutList(opt_outs=[opt_out_info(r) for r in found], next_cursor=cursor)

    @operation(
        description="""Record that a customer opted out (opted_out true: no message is sent to them
        any more) or back in (false), e.g. after a request by phone. Idempotent.""",
        params=SetOptOutParams,
        result=OptOutResult,
        scope="write",
        idempotent=True,
    )
    def set_opt_out(self, ctx: OperationContext, params: SetOptOutParams) -> OptOutResult:
        company = ctx.require_tenant()
        number = to_e164(params.number, _country(company), field="number")
        current = OptOut.objects.filter(company=company, number=number).first()
        if current is not None and current.opted_out == params.opted_out and current.note == params.note:
            return OptOutResult(opt_out=opt_out_info(current))
        row = consent.set_consent(
            company, number, opted_out=params.opted_out, keyword="", source="operator", note=params.note
        )
        return OptOutResult(opt_out=opt_out_info(row))

    # --- costs and connection ---
    @operation(
        description="""What this tenant's messages cost in one month (YYYY-MM in the tenant's time
        zone, default this month): the prices Twilio reported, summed per currency, and how many
        sent messages have no price yet.""",
        params=CostsParams,
        result=CostsResult,
        scope="read",
        read_only=True,
    )
    def get_costs(self, ctx: OperationContext, params: CostsParams) -> CostsResult:
        company = ctx.require_tenant()
        month, costs, priced, unpriced = services.monthly_costs(company, params.month)
        return CostsResult(
            month=month,
            costs=[CurrencyCost(**c) for c in costs],
            priced_messages=priced,
            unpriced_messages=unpriced,
        )

    @operation(
        description="""Check the tenant's Twilio credentials: fetch its Account (status, name) and
        show which senders are set (never the auth token).""",
        params=NoParams,
        result=TestConnectionResult,
        scope="read",
        read_only=True,
        open_world=True,
    )
    def test_connection(self, ctx: OperationContext, params: NoParams) -> TestConnectionResult:
        account = services.account_for(ctx.require_tenant())
        started = time.perf_counter()
        api = twilio_client(account.twilio)
        fetched = twilio_api.call(
            ctx, "fetch account", api.api.v2010.accounts(account.twilio.account_sid).fetch
        )
        return TestConnectionResult(
            ok=fetched.status == "active",
            account_status=str(fetched.status),
            friendly_name=fetched.friendly_name or "",
            sms_sender=account.twilio.sender,
            whatsapp_sender=account.twilio.whatsapp_sender or None,
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
        )
