"""The email server: a tenant's emails to its customers through Django's email framework
(the tenant's SMTP server, or its provider through django-anymail).

Every email sent is recorded per tenant (models.OutboundEmail); reads come from those records,
updated by the provider's tracking webhooks (webhooks.py). A hard bounce or a complaint puts
the address on the tenant's suppression list, and a suppressed address is never mailed again
until it is removed.
"""

from __future__ import annotations

import time

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from askpro.models import Appointment
from mcp_core.contracts import ErrorCode, MCPError, OperationContext
from mcp_core.health import HealthResult, HealthStatus
from mcp_core.schemas import NoParams
from mcp_core.server import MCPServer, operation

from . import client, services
from .models import APPOINTMENT_TEMPLATES, OutboundEmail, Suppression
from .schemas import (
    EmailList,
    EmailParams,
    EmailResult,
    ListEmailsParams,
    ListSuppressionsParams,
    PreviewParams,
    PreviewResult,
    RemoveSuppressionParams,
    RemoveSuppressionResult,
    SendEmailParams,
    SendEmailResult,
    SuppressionList,
    TestConnectionResult,
    email_info,
    suppression_info,
)

HEALTH_SLOW_SECONDS = 1.0


def _page(rows, limit: int, cursor: str | None):
    """Keyset paging on the primary key, newest first: (rows, next_cursor)."""
    if cursor:
        rows = rows.filter(pk__lt=int(cursor))
    found = list(rows.order_by("-pk")[: limit + 1])
    more = len(found) > limit
    found = found[:limit]
    return found, (str(found[-1].pk) if more and found else None)


def _address(value: str, field: str) -> str:
    """The address as given, checked by Django's validator (the schema checks only its shape)."""
    value = value.strip()
    try:
        validate_email(value)
    except ValidationError:
        raise MCPError(
            ErrorCode.VALIDATION_ERROR, f"{field}: not a valid email address", details={"field": field}
        ) from None
    return value


def _invalid(field: str, message: str) -> MCPError:
    return MCPError(ErrorCode.VALIDATION_ERROR, f"{field}: {message}", details={"field": field})


def _check_send(params: SendEmailParams) -> None:
    """Either a template with its record, or free-form subject and text; never both."""
    if params.subject is not None and ("\n" in params.subject or "\r" in params.subject):
        # A line break in a header would start another header (header injection).
        raise _invalid("subject", "must be one line (no line breaks)")
    if params.template is None:
        if params.subject is None or params.text is None:
            field = (
                "template"
                if params.subject is None and params.text is None
                else ("subject" if params.subject is None else "text")
            )
            raise _invalid(field, "give a template, or subject and text for a free-form email")
        for name in ("appointment_id", "invoice_id"):
            if getattr(params, name) is not None:
                raise _invalid(name, "only with a template")
        return
    for name in ("subject", "text", "html"):
        if getattr(params, name) is not None:
            raise _invalid(name, "not with a template (the template writes the email)")
    if params.template in APPOINTMENT_TEMPLATES:
        if params.appointment_id is None:
            raise _invalid("appointment_id", f"required for the {params.template} template")
        if params.invoice_id is not None:
            raise _invalid("invoice_id", f"not with the {params.template} template")
    else:
        if params.invoice_id is None:
            raise _invalid("invoice_id", "required for the invoice_sent template")
        if params.appointment_id is not None:
            raise _invalid("appointment_id", "not with the invoice_sent template")


class EmailServer(MCPServer):
    """Emails of a tenant to its customers: templates in German and English, calendar
    invitations, delivery status, and the suppression list."""

    name = "email"
    description = "Emails to a tenant's customers (confirmations, reminders, invoices) through the tenant's own SMTP server or provider"
    webhooks = "mcp_servers.mail.webhooks"

    def is_configured(self) -> bool:
        return services.configured_accounts().exists()

    def health(self) -> HealthResult:
        """Log in to a few tenants' SMTP servers (distinct host/port/user); provider accounts are
        counted (anymail has no request that checks a key without sending)."""
        rows = list(services.configured_accounts().select_related("company").order_by("pk")[:20])
        if not rows:
            return HealthResult(HealthStatus.NOT_CONFIGURED, "no tenant has an email account with a sender")
        smtp, seen, providers = [], set(), 0
        for row in rows:
            if row.provider:
                providers += 1
                continue
            key = (row.smtp_host, row.smtp_port, row.smtp_username)
            if key not in seen and len(smtp) < 3:
                seen.add(key)
                smtp.append(row)
        if not smtp:
            return HealthResult(
                HealthStatus.HEALTHY, f"{providers} provider account(s) configured (not probed)"
            )
        started = time.perf_counter()
        failures, slowest = [], 0.0
        for row in smtp:
            one = time.perf_counter()
            try:
                client.check_smtp(None, client.transport_for(row), timeout=2.0)
            except MCPError as exc:
                failures.append(f"tenant {row.company.slug}: {exc.message}")
            slowest = max(slowest, time.perf_counter() - one)
        latency = (time.perf_counter() - started) * 1000
        if failures:
            status = HealthStatus.UNHEALTHY if len(failures) == len(smtp) else HealthStatus.DEGRADED
            return HealthResult(status, "; ".join(failures), latency_ms=latency)
        if slowest >= HEALTH_SLOW_SECONDS:
            return HealthResult(HealthStatus.DEGRADED, f"answers, but slowly ({slowest * 1000:.0f} ms)", latency_ms=latency)  # fmt: skip
        return HealthResult(HealthStatus.HEALTHY, f"{len(smtp)} SMTP server(s) answered", latency_ms=latency)

    # --- sending ---
    @operation(
        description="""Send one email to a customer from the tenant's sender (name, address,
        reply-to, branding). Either a template (confirmation, reminder, cancellation, rescheduled
        with appointment_id; invoice_sent with invoice_id), written in the customer's language
        (language, else the customer's, else the company's), as HTML with a plain-text part; the
        appointment templates carry a calendar invitation (METHOD REQUEST, or CANCEL, with the
        appointment's UID and a higher SEQUENCE per update). Or free-form subject and text (and
        html). An address on the suppression list is refused (conflict, reason suppressed).
        Idempotent with an Idempotency-Key: the same key never sends twice.""",
        params=SendEmailParams,
        result=SendEmailResult,
        scope="write",
        open_world=True,
    )
    def send_email(self, ctx: OperationContext, params: SendEmailParams) -> SendEmailResult:
        company = ctx.require_tenant()
        to = _address(params.to, "to")
        _check_send(params)
        out = services.Outgoing(
            to=to,
            template=params.template or "",
            appointment_id=params.appointment_id,
            invoice_id=params.invoice_id,
            customer_id=params.customer_id,
            subject=params.subject or "",
            text=params.text or "",
            html=params.html,
            language=params.language,
        )
        row, note = services.send_email(ctx, company, out, idempotency_key=ctx.request.idempotency_key or "")
        info = email_info(row)
        return SendEmailResult(
            email_id=row.pk, status=row.status, to=row.to_email, template=info.template,
            message_id=info.message_id, note=note, email=info,
        )  # fmt: skip

    # --- reading ---
    @operation(
        description="""One email of this tenant with its delivery status (queued, sent,
        delivered, bounced, complained, failed, suppressed) as the provider's tracking events
        reported it, and its calendar invitation's UID, SEQUENCE and METHOD.""",
        params=EmailParams,
        result=EmailResult,
        scope="read",
        read_only=True,
    )
    def get_email_status(self, ctx: OperationContext, params: EmailParams) -> EmailResult:
        company = ctx.require_tenant()
        row = OutboundEmail.objects.filter(company=company, pk=params.email_id).first()
        if row is None:
            raise MCPError(
                ErrorCode.NOT_FOUND, f"email_id: no email {params.email_id}", details={"field": "email_id"}
            )
        return EmailResult(email=email_info(row))

    @operation(
        description="""This tenant's emails, newest first, filtered by status, recipient,
        template, appointment and time; limit per page (at most 200), next_cursor for the next.""",
        params=ListEmailsParams,
        result=EmailList,
        scope="read",
        read_only=True,
    )
    def list_emails(self, ctx: OperationContext, params: ListEmailsParams) -> EmailList:
        company = ctx.require_tenant()
        if params.since and params.until and params.since >= params.until:
            raise _invalid("until", "must be after since")
        rows = OutboundEmail.objects.filter(company=company)
        if params.status is not None:
            rows = rows.filter(status=params.status)
        if params.to is not None:
            rows = rows.filter(to_email__iexact=_address(params.to, "to"))
        if params.template is not None:
            rows = rows.filter(template=params.template)
        if params.appointment_id is not None:
            # Another tenant's appointment is not_found, not an empty list: the id is checked.
            services.tenant_record(Appointment, company, params.appointment_id, "appointment_id")
            rows = rows.filter(appointment_id=params.appointment_id)
        if params.since is not None:
            rows = rows.filter(created_at__gte=params.since)
        if params.until is not None:
            rows = rows.filter(created_at__lt=params.until)
        found, cursor = _page(rows, params.limit, params.cursor)
        return EmailList(emails=[email_info(e) for e in found], next_cursor=cursor)

    # --- suppressions ---
    @operation(
        description="""Addresses this tenant never mails (hard bounces, spam complaints, added by
        an operator), newest first.""",
        params=ListSuppressionsParams,
        result=SuppressionList,
        scope="read",
        read_only=True,
    )
    def list_suppressions(self, ctx: OperationContext, params: ListSuppressionsParams) -> SuppressionList:
        company = ctx.require_tenant()
        rows = Suppression.objects.filter(company=company)
        if params.address is not None:
            rows = rows.filter(address=_address(params.address, "address").lower())
        if params.reason is not None:
            rows = rows.filter(reason=params.reason)
        found, cursor = _page(rows, params.limit, params.cursor)
        return SuppressionList(suppressions=[suppression_info(s) for s in found], next_cursor=cursor)

    @operation(
        description="""Take an address off this tenant's suppression list, so that it may be
        mailed again (e.g. the customer fixed their mailbox). Idempotent: removed is false when
        it was not on the list.""",
        params=RemoveSuppressionParams,
        result=RemoveSuppressionResult,
        scope="write",
        idempotent=True,
    )
    def remove_suppression(
        self, ctx: OperationContext, params: RemoveSuppressionParams
    ) -> RemoveSuppressionResult:
        company = ctx.require_tenant()
        address = _address(params.address, "address").lower()
        return RemoveSuppressionResult(address=address, removed=services.unsuppress(company, address))

    # --- templates and connection ---
    @operation(
        description="""Render a template as it would be sent (subject, plain text, HTML, and the
        calendar invitation of an appointment template) in German or English, with one of the
        tenant's appointments or invoices, or with sample values. Nothing is sent.""",
        params=PreviewParams,
        result=PreviewResult,
        scope="read",
        read_only=True,
    )
    def preview_template(self, ctx: OperationContext, params: PreviewParams) -> PreviewResult:
        company = ctx.require_tenant()
        if params.template in APPOINTMENT_TEMPLATES and params.invoice_id is not None:
            raise _invalid("invoice_id", f"not with the {params.template} template")
        if params.template == "invoice_sent" and params.appointment_id is not None:
            raise _invalid("appointment_id", "not with the invoice_sent template")
        shown = services.preview(
            company, params.template, language=params.language,
            appointment_id=params.appointment_id, invoice_id=params.invoice_id,
        )  # fmt: skip
        return PreviewResult(
            template=params.template, language=shown.language, subject=shown.content.subject,
            text=shown.content.text, html=shown.content.html, ics=shown.ics, sample=shown.sample,
        )  # fmt: skip

    @operation(
        description="""Check the tenant's email account: for SMTP, connect, STARTTLS and log in
        as configured (nothing is sent); a provider account is shown as configured (ok null:
        checking its API key would need a send). Never shows a credential.""",
        params=NoParams,
        result=TestConnectionResult,
        scope="read",
        read_only=True,
        open_world=True,
    )
    def test_connection(self, ctx: OperationContext, params: NoParams) -> TestConnectionResult:
        account = services.account_for(ctx.require_tenant())
        transport = client.transport_for(account)
        started = time.perf_counter()
        greeting, ok, checked = None, None, "not_checked"
        if transport.name == "smtp":
            greeting = client.check_smtp(ctx, transport)
            ok, checked = True, "smtp_login" if account.smtp_username else "smtp_connect"
        return TestConnectionResult(
            ok=ok, transport=transport.name, checked=checked, greeting=greeting or None,
            from_email=account.from_email, reply_to=account.reply_to or None,
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
        )  # fmt: skip
