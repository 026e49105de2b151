"""The messaging server's params and results (msgspec Structs) and the converter from our
Message rows to results (no I/O here)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

import msgspec

from mcp_core.schemas import BIGINT_MAX, Params, Result

from .models import Message, OptOut

Meta = msgspec.Meta

PhoneIn = Annotated[
    str,
    Meta(
        min_length=3,
        max_length=40,
        description="The customer's phone number: E.164 (+4915112345678) or national in the tenant's country",
    ),
]
SmsBody = Annotated[
    str, Meta(min_length=1, max_length=1600, description="The text (at most 1600 characters)")
]
ContentSid = Annotated[
    str, Meta(pattern=r"^HX[0-9a-fA-F]{32}$", description="An approved WhatsApp content template (HX…)")
]
ContentVariables = Annotated[
    dict[Annotated[str, Meta(pattern=r"^[0-9A-Za-z_]{1,20}$")], Annotated[str, Meta(max_length=1024)]],
    Meta(max_length=50, description='The template\'s placeholders, e.g. {"1": "Friday 10:00"}'),
]
MessageId = Annotated[int, Meta(ge=1, le=BIGINT_MAX, description="The message's id (from send or list)")]
Cursor = Annotated[str, Meta(pattern=r"^[0-9]{1,19}$", description="next_cursor of the previous page")]
Limit = Annotated[int, Meta(ge=1, le=200)]
Month = Annotated[
    str, Meta(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", description="YYYY-MM (default: this month)")
]
Urgent = Annotated[
    bool, Meta(description="Send even during the tenant's quiet hours (otherwise deferred to their end)")
]
Status = Literal[
    "deferred", "accepted", "scheduled", "queued", "sending", "sent", "delivered", "undelivered",
    "failed", "canceled", "read", "receiving", "received", "partially_delivered",
]  # fmt: skip


class SendSmsParams(Params):
    to: PhoneIn
    body: SmsBody
    urgent: Urgent = False


class SendWhatsAppParams(Params):
    to: PhoneIn
    body: Annotated[str, Meta(min_length=1, max_length=1600, description="Free text: only inside the 24-hour window")] | None = None  # fmt: skip
    content_sid: ContentSid | None = None
    content_variables: ContentVariables | None = None
    urgent: Urgent = False


BATCH_MAX = 500
IdempotencyKey = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="This message's own Idempotency-Key (printable ASCII, no spaces): a repeat with it "
        "answers with the message already sent",
    ),
]


class BatchMessage(Params):
    channel: Literal["sms", "whatsapp"]
    to: PhoneIn
    body: Annotated[str, Meta(min_length=1, max_length=1600, description="The text (WhatsApp: only inside the 24-hour window)")] | None = None  # fmt: skip
    content_sid: ContentSid | None = None
    content_variables: ContentVariables | None = None
    urgent: Urgent = False
    idempotency_key: IdempotencyKey | None = None


class SendBatchParams(Params):
    messages: Annotated[
        list[BatchMessage],
        Meta(min_length=1, max_length=BATCH_MAX, description=f"1 to {BATCH_MAX} messages, each on its own"),
    ]


class MessageParams(Params):
    message_id: MessageId
    refresh: Annotated[bool, Meta(description="Ask Twilio for the latest status and price first")] = True


class ListMessagesParams(Params):
    direction: Literal["outbound", "inbound"] | None = None
    channel: Literal["sms", "whatsapp"] | None = None
    status: Status | None = None
    customer_number: PhoneIn | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: Limit = 50
    cursor: Cursor | None = None


class ConversationParams(Params):
    customer_number: PhoneIn
    limit: Limit = 100
    cursor: Cursor | None = None


class ListOptOutsParams(Params):
    include_opted_in: Annotated[bool, Meta(description="Also customers who opted back in")] = False
    limit: Limit = 100
    cursor: Cursor | None = None


class SetOptOutParams(Params):
    number: PhoneIn
    opted_out: bool
    note: Annotated[str, Meta(max_length=200)] = ""


class CostsParams(Params):
    month: Month | None = None


class MessageInfo(Result):
    id: int
    channel: str
    direction: str
    customer_number: str
    body: str
    content_sid: str | None
    status: str
    twilio_sid: str | None
    error_code: int | None
    error_message: str | None
    price: Decimal | None
    price_unit: str | None
    segments: int | None
    urgent: bool
    send_after: dt.datetime | None
    created_at: dt.datetime
    sent_at: dt.datetime | None


class SendResult(Result):
    message: MessageInfo
    deferred: bool
    note: str


class BatchItemError(Result):
    code: str
    message: str
    field: str | None
    reason: str | None
    upstream_status: int | None  # Twilio's HTTP status, when Twilio refused or failed
    retry_after: float | None  # seconds, when waiting may help


class BatchItemResult(Result):
    index: int
    ok: bool
    message: MessageInfo | None  # the message sent, deferred, or already sent with the same key
    deferred: bool
    note: str
    error: BatchItemError | None


class SendBatchResult(Result):
    results: list[BatchItemResult]  # one per message, in the order given
    sent: int
    deferred: int
    failed: int


class MessageResult(Result):
    message: MessageInfo


class MessageList(Result):
    messages: list[MessageInfo]
    next_cursor: str | None


class WhatsAppWindow(Result):
    open: bool
    closes_at: dt.datetime | None


class ConversationResult(Result):
    customer_number: str
    opted_out: bool
    whatsapp_window: WhatsAppWindow
    messages: list[MessageInfo]  # oldest first; next_cursor pages to older ones
    next_cursor: str | None


class OptOutInfo(Result):
    number: str
    opted_out: bool
    keyword: str | None
    source: str
    note: str | None
    changed_at: dt.datetime


class OptOutList(Result):
    opt_outs: list[OptOutInfo]
    next_cursor: str | None


class OptOutResult(Result):
    opt_out: OptOutInfo


class TestConnectionResult(Result):
    ok: bool
    account_status: str
    friendly_name: str
    sms_sender: str
    whatsapp_sender: str | None
    latency_ms: float


class CurrencyCost(Result):
    currency: str
    total: Decimal
    messages: int


class CostsResult(Result):
    month: str
    costs: list[CurrencyCost]
    priced_messages: int
    unpriced_messages: int


def message_info(m: Message) -> MessageInfo:
    return MessageInfo(
        id=m.pk,
        channel=m.channel,
        direction=m.direction,
        customer_number=m.customer_number,
        body=m.body,
        content_sid=m.content_sid or None,
        status=m.status,
        twilio_sid=m.twilio_sid,
        error_code=m.error_code,
        error_message=m.error_message or None,
        price=m.price,
        price_unit=m.price_unit or None,
        segments=m.segments,
        urgent=m.urgent,
        send_after=m.send_after,
        created_at=m.created_at,
        sent_at=m.sent_at,
    )


def opt_out_info(row: OptOut) -> OptOutInfo:
    return OptOutInfo(
        number=row.number,
        opted_out=row.opted_out,
        keyword=row.keyword or None,
        source=row.source,
        note=row.note or None,
        changed_at=row.changed_at,
    )
