"""The email server's params and results (msgspec Structs) and the converters from our rows
to results (no I/O here)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from mcp_core.schemas import BIGINT_MAX, Params, Result

from .models import OutboundEmail, Suppression

Meta = msgspec.Meta

# One address, as RFC 5321 bounds it (254); the shape is checked again by Django's validator.
Address = Annotated[
    str,
    Meta(
        min_length=3,
        max_length=254,
        pattern=r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$",
        description="An email address (someone@example.com)",
    ),
]
Template = Literal["confirmation", "reminder", "cancellation", "rescheduled", "invoice_sent"]
Language = Literal["de", "en"]
RecordId = Annotated[int, Meta(ge=1, le=BIGINT_MAX)]
Cursor = Annotated[str, Meta(pattern=r"^[0-9]{1,19}$", description="next_cursor of the previous page")]
Limit = Annotated[int, Meta(ge=1, le=200)]
Status = Literal["queued", "sent", "delivered", "bounced", "complained", "failed", "suppressed"]


class SendEmailParams(Params):
    to: Address
    template: Annotated[Template, Meta(description="A template; else give subject and text")] | None = None
    appointment_id: Annotated[RecordId, Meta(description="The tenant's appointment (the four appointment templates)")] | None = None  # fmt: skip
    invoice_id: Annotated[RecordId, Meta(description="The tenant's invoice (invoice_sent)")] | None = None
    customer_id: Annotated[RecordId, Meta(description="The tenant's customer this email is for")] | None = (
        None
    )
    subject: (
        Annotated[str, Meta(min_length=1, max_length=300, description="Free-form: the subject")] | None
    ) = None
    text: Annotated[str, Meta(min_length=1, max_length=50_000, description="Free-form: the plain-text part")] | None = None  # fmt: skip
    html: Annotated[str, Meta(min_length=1, max_length=65_536, description="Free-form: the HTML part (else the text)")] | None = None  # fmt: skip
    language: Annotated[Language, Meta(description="Default: the customer's, else the company's")] | None = (
        None
    )


class EmailParams(Params):
    email_id: Annotated[RecordId, Meta(description="The email's id (from send_email or list_emails)")]


class ListEmailsParams(Params):
    status: Status | None = None
    to: Address | None = None
    template: Template | None = None
    appointment_id: RecordId | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: Limit = 50
    cursor: Cursor | None = None


class ListSuppressionsParams(Params):
    address: Address | None = None
    reason: Literal["hard_bounce", "complaint", "manual"] | None = None
    limit: Limit = 100
    cursor: Cursor | None = None


class RemoveSuppressionParams(Params):
    address: Address


class PreviewParams(Params):
    template: Template
    language: Language | None = None
    appointment_id: Annotated[RecordId, Meta(description="Render with this appointment (else sample data)")] | None = None  # fmt: skip
    invoice_id: (
        Annotated[RecordId, Meta(description="Render with this invoice (else sample data)")] | None
    ) = None


class EmailInfo(Result):
    id: int
    to: str
    template: str | None
    language: str
    subject: str
    status: str
    message_id: str | None
    provider_message_id: str | None
    transport: str | None
    error_message: str | None
    appointment_id: int | None
    invoice_id: int | None
    customer_id: int | None
    ics_uid: str | None
    ics_sequence: int | None
    ics_method: str | None
    attempts: int
    created_at: dt.datetime
    sent_at: dt.datetime | None


class SendEmailResult(Result):
    email_id: int
    status: str
    to: str
    template: str | None
    message_id: str | None
    note: str
    email: EmailInfo


class EmailResult(Result):
    email: EmailInfo


class EmailList(Result):
    emails: list[EmailInfo]
    next_cursor: str | None


class SuppressionInfo(Result):
    address: str
    reason: str
    detail: str | None
    email_id: int | None
    created_at: dt.datetime


class SuppressionList(Result):
    suppressions: list[SuppressionInfo]
    next_cursor: str | None


class RemoveSuppressionResult(Result):
    address: str
    removed: bool


class PreviewResult(Result):
    template: str
    language: str
    subject: str
    text: str
    html: str
    ics: str | None
    sample: bool


class TestConnectionResult(Result):
    ok: bool | None  # None: a provider account, which cannot be checked without sending
    transport: str
    checked: str
    greeting: str | None
    from_email: str
    reply_to: str | None
    latency_ms: float


def email_info(e: OutboundEmail) -> EmailInfo:
    return EmailInfo(
        id=e.pk,
        to=e.to_email,
        template=e.template or None,
        language=e.language,
        subject=e.subject,
        status=e.status,
        message_id=e.message_id or None,
        provider_message_id=e.provider_message_id or None,
        transport=e.transport or None,
        error_message=e.error_message or None,
        appointment_id=e.appointment_id,
        invoice_id=e.invoice_id,
        customer_id=e.customer_id,
        ics_uid=e.ics_uid or None,
        ics_sequence=e.ics_sequence,
        ics_method=e.ics_method or None,
        attempts=e.attempts,
        created_at=e.created_at,
        sent_at=e.sent_at,
    )


def suppression_info(s: Suppression) -> SuppressionInfo:
    return SuppressionInfo(
        address=s.address,
        reason=s.reason,
        detail=s.detail or None,
        email_id=s.email_id,
        created_at=s.created_at,
    )
