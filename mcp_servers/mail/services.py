"""What the email server does, apart from its transports: resolve a tenant's account, send
one email (idempotently, never to a suppressed address, with the appointment's calendar
invitation), apply the provider's tracking events, and keep the suppression list.

Operations, the admin and the webhook handler all call these; none holds logic of its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.mime.text import MIMEText
from email.utils import formataddr, make_msgid
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from askpro.models import Appointment, Company, Customer, Invoice
from mcp_core import signals
from mcp_core.contracts import ErrorCode, MCPError, OperationContext
from mcp_core.tenancy import TenantCredentials

from . import client, rendering
from .models import STATUS_RANK, CalendarSequence, EmailAccount, OutboundEmail, Suppression

logger = logging.getLogger(__name__)

# The secret the provider's tracking webhooks authenticate with (tenant-only: each tenant has
# its own provider account; deliveries name the tenant in the URL).
WEBHOOK_SECRET = TenantCredentials(
    service="email",
    tenant_field="email_account__webhook_secret",
    platform_setting="",
    what="email webhook secret",
)


# --- accounts -------------------------------------------------------------------------------


def configured_accounts():
    """Accounts that can send: a sender address and an SMTP host or a provider API key."""
    return (
        EmailAccount.objects.filter(company__is_active=True)
        .exclude(from_email="")
        .filter(Q(provider="", smtp_host__gt="") | (~Q(provider="") & ~Q(api_key="")))
    )


def account_of(company: Company) -> EmailAccount | None:
    try:
        return company.email_account
    except ObjectDoesNotExist:
        return None


def account_for(company: Company) -> EmailAccount:
    """The tenant's sending account; not_configured, naming what is missing, without one."""
    row = account_of(company)
    missing = []
    if row is None or not row.from_email:
        missing.append("sender address")
    if row is None or (not row.provider and not row.smtp_host):
        missing.append("SMTP host (or a provider)")
    elif row.provider and not row.api_key:
        missing.append(f"{row.provider} API key")
    if missing:
        raise MCPError(
            ErrorCode.NOT_CONFIGURED,
            f"email: this tenant's {' and '.join(missing)} are not set; set them in the admin (Email accounts)",
        )
    return row


# --- records of the tenant --------------------------------------------------------------------


def tenant_record(model: type, company: Company, pk: int | None, field: str) -> Any:
    if pk is None:
        return None
    related = {
        Appointment: ("customer", "staff", "service", "branch", "company"),
        Invoice: ("customer", "company"),
    }
    rows = model.objects.filter(company=company, pk=pk).select_related(*related.get(model, ()))
    found = rows.first()
    if found is None:
        raise MCPError(
            ErrorCode.NOT_FOUND,
            f"{field}: this tenant has no {model._meta.verbose_name} {pk}",
            details={"field": field},
        )
    return found


# --- sending --------------------------------------------------------------------------------


@dataclass
class Outgoing:
    """One email to send: a template with its record, or free-form text."""

    to: str
    template: str = ""
    appointment_id: int | None = None
    invoice_id: int | None = None
    customer_id: int | None = None
    subject: str = ""
    text: str = ""
    html: str | None = None
    language: str | None = None

    def same_as(self, e: OutboundEmail) -> bool:
        mine = (self.to.lower(), self.template, self.appointment_id, self.invoice_id)
        theirs = (e.to_email.lower(), e.template, e.appointment_id, e.invoice_id)
        return mine == theirs and (bool(self.template) or self.subject == e.subject)


def suppression_of(company: Company, address: str) -> Suppression | None:
    return Suppression.objects.filter(company=company, address=address.strip().lower()).first()


def _refuse_suppressed(
    company: Company, out: Outgoing, found: Suppression, subject: str, language: str
) -> None:
    # Kept as evidence (without the idempotency key: a retry after removal may send).
    row = OutboundEmail.objects.create(
        company=company, to_email=out.to, template=out.template, language=language, subject=subject[:300],
        status="suppressed", status_rank=0, appointment_id=out.appointment_id, invoice_id=out.invoice_id,
        customer_id=out.customer_id, error_message=f"suppressed: {found.reason}",
    )  # fmt: skip
    raise MCPError(
        ErrorCode.CONFLICT,
        f"to: {out.to} is on this tenant's suppression list ({found.reason}, since "
        f"{found.created_at:%Y-%m-%d}): it is never mailed until removed (remove_suppression)",
        details={
            "field": "to",
            "reason": "suppressed",
            "suppression_reason": found.reason,
            "email_id": row.pk,
        },
    )


def _content(company: Company, account: EmailAccount | None, out: Outgoing, records: dict[str, Any]):
    """(language, Rendered) of the email."""
    customer = records["customer"] or getattr(records["appointment"] or records["invoice"], "customer", None)
    language = rendering.choose_language(company, out.language, customer)
    context = rendering.branding(company, account)
    if not out.template:
        return language, rendering.free_form(out.subject, out.text, out.html, context, language)
    if records["appointment"] is not None:
        context.update(rendering.appointment_context(records["appointment"], language))
    elif records["invoice"] is not None:
        context.update(rendering.invoice_context(records["invoice"], language))
    if out.customer_id and customer is not None:
        context["customer_name"] = customer.name
    return language, rendering.render(out.template, language, context)


def send_email(
    ctx: OperationContext | None, company: Company, out: Outgoing, *, idempotency_key: str = ""
) -> tuple[OutboundEmail, str]:
    """Send one email now. (row, note). Same idempotency key: the first result, never a second
    email (a failed first attempt is tried again on the same row)."""
    account = account_for(company)
    records = {
        "appointment": tenant_record(Appointment, company, out.appointment_id, "appointment_id"),
        "invoice": tenant_record(Invoice, company, out.invoice_id, "invoice_id"),
        "customer": tenant_record(Customer, company, out.customer_id, "customer_id"),
    }
    row = None
    if idempotency_key:
        row = OutboundEmail.objects.filter(company=company, idempotency_key=idempotency_key).first()
        if row is not None:
            if not out.same_as(row):
                raise MCPError(
                    ErrorCode.CONFLICT,
                    "idempotency_key: already used for another email",
                    details={"field": "idempotency_key"},
                )
            if row.status != "failed":
                return row, "the same request was already made: its email"
    language, content = _content(company, account, out, records)
    found = suppression_of(company, out.to)
    if found is not None:
        _refuse_suppressed(company, out, found, content.subject, language)
    if row is None:
        row = OutboundEmail(
            company=company, to_email=out.to, template=out.template, language=language,
            subject=content.subject[:300], appointment_id=out.appointment_id, invoice_id=out.invoice_id,
            customer_id=out.customer_id or getattr(records["appointment"] or records["invoice"], "customer_id", None),
            idempotency_key=idempotency_key[:255],
        )  # fmt: skip
        try:
            with transaction.atomic():
                row.save()
        except IntegrityError:
            # Another request with this key got there first: its email is the answer.
            earlier = OutboundEmail.objects.filter(company=company, idempotency_key=idempotency_key).first()
            if earlier is None or not out.same_as(earlier):
                raise MCPError(ErrorCode.CONFLICT, "idempotency_key: already used for another email",
                               details={"field": "idempotency_key"}) from None  # fmt: skip
            return earlier, "the same request is being handled: its email"
    transport = client.transport_for(account)
    message = _message(company, account, row, content)
    if records["appointment"] is not None and rendering.is_appointment_template(out.template):
        _attach_invitation(message, account, row, records["appointment"])
    OutboundEmail.objects.filter(pk=row.pk).update(
        attempts=F("attempts") + 1, message_id=row.message_id, transport=transport.name,
        ics_uid=row.ics_uid, ics_sequence=row.ics_sequence, ics_method=row.ics_method,
    )  # fmt: skip
    try:
        provider_id = client.send(ctx, transport, message)
    except MCPError as exc:
        OutboundEmail.objects.filter(pk=row.pk).update(
            status="failed", status_rank=STATUS_RANK["failed"], error_message=exc.message[:500],
            updated_at=timezone.now(),
        )  # fmt: skip
        exc.details.setdefault("email_id", row.pk)
        raise
    # A tracking event may already have moved it further (rank): only a lower rank is replaced.
    OutboundEmail.objects.filter(pk=row.pk, status_rank__lt=STATUS_RANK["sent"]).update(
        status="sent",
        status_rank=STATUS_RANK["sent"],
        error_message="",
    )
    OutboundEmail.objects.filter(pk=row.pk).update(
        sent_at=timezone.now(), provider_message_id=provider_id[:200]
    )
    row.refresh_from_db()
    return row, f"sent through {transport.name}"


def _message(company: Company, account: EmailAccount, row: OutboundEmail, content) -> EmailMultiAlternatives:
    domain = account.from_email.rpartition("@")[2] or f"{company.slug}.askpro"
    row.message_id = make_msgid(idstring=f"askpro.{row.pk}", domain=domain)
    headers = {
        "Message-ID": row.message_id,
        # Echoed by the provider's tracking events (Postmark: Metadata), so they find this row.
        "X-PM-Metadata-email-id": str(row.pk),
        "Content-Language": row.language,
    }
    message = EmailMultiAlternatives(
        subject=content.subject,
        body=content.text,
        from_email=formataddr((account.from_name or company.name, account.from_email)),
        to=[row.to_email],
        reply_to=[account.reply_to] if account.reply_to else None,
        headers=headers,
    )
    message.attach_alternative(content.html, "text/html")
    message.metadata = {"email_id": str(row.pk)}  # anymail: the provider's metadata
    return message


def _attach_invitation(message, account: EmailAccount, row: OutboundEmail, appointment: Appointment) -> None:
    """The iCalendar invitation: METHOD REQUEST (CANCEL for a cancellation), the appointment's
    stable UID, and a SEQUENCE one higher than the last update sent (a reminder repeats it)."""
    method = rendering.ICS_METHOD[row.template]
    bump = row.template != "reminder"
    with transaction.atomic():
        current, created = CalendarSequence.objects.select_for_update().get_or_create(
            appointment=appointment,
            defaults={"company": appointment.company, "uid": rendering.ics_uid(appointment), "sequence": 0},
        )
        if bump and not created:
            current.sequence += 1
            current.save(update_fields=["sequence", "updated_at"])
    row.ics_uid, row.ics_sequence, row.ics_method = current.uid, current.sequence, method
    body = rendering.ics(
        appointment, method=method, sequence=current.sequence, organizer_email=account.from_email,
        organizer_name=account.from_name or appointment.company.name, attendee_email=row.to_email,
    )  # fmt: skip
    part = MIMEText(body.decode("utf-8"), "calendar", "utf-8")
    part.set_param("method", method)
    part.add_header("Content-Disposition", "attachment", filename="invite.ics")
    message.attach(part)


# --- suppressions ---------------------------------------------------------------------------


def suppress(
    company: Company, address: str, reason: str, *, detail: str = "", email: OutboundEmail | None = None
) -> Suppression:
    """Put an address on the tenant's list (the first reason stays; a complaint outranks)."""
    address = address.strip().lower()
    row, created = Suppression.objects.get_or_create(
        company=company, address=address, defaults={"reason": reason, "detail": detail[:300], "email": email}
    )
    if not created and reason == Suppression.Reason.COMPLAINT and row.reason != reason:
        row.reason, row.detail = reason, detail[:300]
        row.save(update_fields=["reason", "detail"])
    return row


def unsuppress(company: Company, address: str) -> bool:
    deleted, _ = Suppression.objects.filter(company=company, address=address.strip().lower()).delete()
    if deleted:
        logger.info("email: tenant %s removed an address from its suppression list", company.pk)
    return bool(deleted)


# --- tracking events (Postmark's webhook payloads, read through django-anymail) ---------------

# Bounce types after which an address is never tried again (Postmark deactivates it too).
HARD_BOUNCES = frozenset({"HardBounce", "BadEmailAddress", "ManuallyDeactivated", "Blocked"})


def normalized_event(payload: dict[str, Any]) -> Any:
    """anymail's AnymailTrackingEvent for a Postmark payload (its event types, message id,
    metadata, recipient), or None for one it cannot read. Authentication is verify_postmark's;
    the view is used for its parsing only."""
    from anymail.exceptions import AnymailError
    from anymail.webhooks.postmark import PostmarkTrackingWebhookView

    # The view wants a secret to be built; it never checks one here (verify_postmark did).
    view = PostmarkTrackingWebhookView(webhook_secret="parsing-only")  # noqa: S106
    try:
        return view.esp_to_anymail_event(payload)
    except (AnymailError, KeyError, TypeError, ValueError, AttributeError):
        return None


def email_for_event(company: Company, event: Any) -> OutboundEmail | None:
    metadata = event.metadata if isinstance(event.metadata, dict) else {}
    raw_id = str(metadata.get("email_id") or metadata.get("email-id") or "")
    rows = OutboundEmail.objects.filter(company=company)
    if raw_id.isdigit() and len(raw_id) < 19:
        found = rows.filter(pk=int(raw_id)).first()
        if found is not None:
            return found
    message_id = str(event.message_id or "").strip()[:200]
    if not message_id:
        return None
    return (
        rows.filter(Q(provider_message_id=message_id) | Q(message_id=f"<{message_id.strip('<>')}>"))
        .order_by("-pk")
        .first()
    )


def apply_status(email: OutboundEmail, status: str, detail: str = "") -> bool:
    """Only a higher rank replaces the stored status, in one conditional UPDATE."""
    rank = STATUS_RANK[status]
    updates: dict[str, Any] = {"status": status, "status_rank": rank, "updated_at": timezone.now()}
    if detail:
        updates["error_message"] = detail[:500]
    changed = bool(OutboundEmail.objects.filter(pk=email.pk, status_rank__lt=rank).update(**updates))
    if changed:  # whoever asked for this email (the reminders) learns its fate without an import
        signals.send(signals.outbound_message_updated, sender="email", company_id=email.company_id,
                     service="email", message_id=email.pk, status=status, price=None, price_unit="")  # fmt: skip
    return changed


def handle_tracking_event(company: Company, payload: dict[str, Any]) -> str:
    """A verified Postmark event, normalised by anymail: delivered, bounced/rejected, complained
    (others are noted only). A hard bounce or a complaint puts the address on the tenant's
    suppression list; a soft bounce does not."""
    event = normalized_event(payload)
    if event is None:
        return "ignored: not a Postmark tracking event"
    kind = str(event.event_type)
    email = email_for_event(company, event)
    address = str(event.recipient or (email.to_email if email else "")).strip()
    label = f"email {email.pk}" if email else "an email not recorded here"
    if kind == "delivered":
        changed = email is not None and apply_status(email, "delivered")
        return f"{label} delivered" + ("" if changed else " (kept its status)")
    if kind in ("bounced", "rejected", "deferred"):
        bounce = str(payload.get("Type") or kind)[:40]
        hard = bounce in HARD_BOUNCES or payload.get("Inactive") is True
        detail = " ".join(str(event.description or event.mta_response or bounce).split())[:300]
        if not hard:
            return f"{label}: soft bounce ({bounce}), not suppressed"
        if email is not None:
            apply_status(email, "bounced", f"hard bounce: {detail}")
        if "@" in address:
            suppress(company, address, Suppression.Reason.HARD_BOUNCE, detail=detail, email=email)
            return f"{label} bounced ({bounce}); address suppressed"
        return f"{label} bounced ({bounce}); no address to suppress"
    if kind == "complained":
        if email is not None:
            apply_status(email, "complained", "the recipient marked it as spam")
        if "@" in address:
            suppress(company, address, Suppression.Reason.COMPLAINT, detail="spam complaint", email=email)
            return f"{label}: spam complaint; address suppressed"
        return f"{label}: spam complaint; no address to suppress"
    return f"ignored: {kind} event"


# --- preview --------------------------------------------------------------------------------


@dataclass
class Preview:
    """A template as it would be sent: language, parts, the invitation, and whether the
    values are sample data."""

    language: str
    content: rendering.Rendered
    ics: str | None
    sample: bool


def preview(
    company: Company,
    template: str,
    *,
    language: str | None = None,
    appointment_id: int | None = None,
    invoice_id: int | None = None,
) -> Preview:
    """Render a template with a real appointment or invoice of the tenant, or sample values.
    Nothing is sent, stored or counted (the calendar sequence is shown as it would be next)."""
    appointment = tenant_record(Appointment, company, appointment_id, "appointment_id")
    invoice = tenant_record(Invoice, company, invoice_id, "invoice_id")
    account = account_of(company)
    customer = getattr(appointment or invoice, "customer", None)
    lang = rendering.choose_language(company, language, customer)
    context = rendering.branding(company, account)
    if appointment is not None and rendering.is_appointment_template(template):
        context.update(rendering.appointment_context(appointment, lang))
    elif invoice is not None and template == "invoice_sent":
        context.update(rendering.invoice_context(invoice, lang))
    else:
        context.update(rendering.sample_context(template, company, lang))
    content = rendering.render(template, lang, context)
    ics = None
    if appointment is not None and rendering.is_appointment_template(template):
        current = CalendarSequence.objects.filter(appointment=appointment).first()
        sequence = 0 if current is None else current.sequence + (template != "reminder")
        ics = rendering.ics(
            appointment, method=rendering.ICS_METHOD[template], sequence=sequence,
            organizer_email=(account.from_email if account and account.from_email else f"noreply@{company.slug}.askpro"),
            organizer_name=(account.from_name if account else "") or company.name,
            attendee_email=(customer.email if customer and customer.email else "customer@example.com"),
        ).decode("utf-8")  # fmt: skip
    real = appointment is not None if template != "invoice_sent" else invoice is not None
    return Preview(lang, content, ics, not real)
