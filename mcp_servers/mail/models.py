"""The email server's records: each tenant's sending account (SMTP or a provider through
django-anymail), every email sent, the suppression list, and the iCalendar sequence of each
appointment.

Provider events arrive out of order, so an email keeps the rank of its status and only a
higher rank replaces it (STATUS_RANK): a late "delivered" never overwrites "bounced".
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from askpro.crypto import EncryptedTextField, SecretsModel
from askpro.models import Appointment, Company, Customer, Invoice

STATUS_RANK = {
    "queued": 1,
    "failed": 2,  # nothing was accepted: a retry with the same idempotency key sends again
    "sent": 3,
    "delivered": 4,
    "bounced": 5,
    "complained": 6,
}
STATUSES = (*STATUS_RANK, "suppressed")
TEMPLATES = ("confirmation", "reminder", "cancellation", "rescheduled", "invoice_sent")
APPOINTMENT_TEMPLATES = ("confirmation", "reminder", "cancellation", "rescheduled")
LANGUAGES = (("de", "Deutsch"), ("en", "English"))

# django-anymail backends by provider, and the keyword each takes its API key as.
PROVIDERS = {
    "postmark": ("anymail.backends.postmark.EmailBackend", "server_token"),
    "mailgun": ("anymail.backends.mailgun.EmailBackend", "api_key"),
    "sendgrid": ("anymail.backends.sendgrid.EmailBackend", "api_key"),
}


class EmailAccount(SecretsModel):
    """One tenant's sending account and branding. Credentials are encrypted at rest and
    write-only in the admin. SMTP unless a provider is chosen; without a sender address and
    either an SMTP host or a provider API key the tenant's email is not_configured."""

    class Security(models.TextChoices):
        STARTTLS = "starttls", "STARTTLS"
        SSL = "ssl", "SSL/TLS"
        NONE = "none", "None (local relays only)"

    company = models.OneToOneField(Company, on_delete=models.CASCADE, related_name="email_account")
    provider = models.CharField(
        max_length=20,
        blank=True,
        default="",
        choices=[(name, name.capitalize()) for name in PROVIDERS],
        help_text="Empty: the SMTP server below. Otherwise the provider's API through django-anymail.",
    )
    smtp_host = models.CharField("SMTP host", max_length=255, blank=True, default="")
    smtp_port = models.PositiveIntegerField("SMTP port", default=587)
    smtp_security = models.CharField(max_length=10, choices=Security.choices, default=Security.STARTTLS)
    smtp_username = EncryptedTextField("SMTP username", blank=True, default="")
    smtp_password = EncryptedTextField("SMTP password", blank=True, default="")
    api_key = EncryptedTextField("provider API key", blank=True, default="")
    sender_domain = models.CharField(
        max_length=255, blank=True, default="", help_text="Mailgun only: the sending domain."
    )
    webhook_secret = EncryptedTextField(
        "webhook secret",
        blank=True,
        default="",
        help_text="The provider's tracking webhooks authenticate with it (anymail's WEBHOOK_SECRET, "
        "'user:password', as basic auth in the webhook URL).",
    )
    from_email = models.EmailField("sender address", blank=True, default="")
    from_name = models.CharField("sender name", max_length=100, blank=True, default="")
    reply_to = models.EmailField(blank=True, default="")
    brand_color = models.CharField(
        max_length=7, default="#1f6feb", help_text="#RRGGBB: headings and buttons of the HTML part."
    )
    logo_url = models.URLField(blank=True, default="", help_text="https:// image shown atop the HTML part.")
    footer = models.TextField(blank=True, default="", help_text="Shown under every email (address, legal).")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "email account"
        constraints = [
            models.CheckConstraint(
                condition=Q(brand_color__regex=r"^#[0-9A-Fa-f]{6}$"), name="email_account_brand_color"
            )
        ]

    def __str__(self) -> str:
        return f"Email account of {self.company}"


class OutboundEmail(models.Model):
    """One email a tenant sent (or was refused to send: suppressed), with its delivery
    status as the provider reports it."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="outbound_emails")
    customer = models.ForeignKey(
        Customer, on_delete=models.SET_NULL, null=True, blank=True, related_name="emails"
    )
    appointment = models.ForeignKey(
        Appointment, on_delete=models.SET_NULL, null=True, blank=True, related_name="emails"
    )
    invoice = models.ForeignKey(
        Invoice, on_delete=models.SET_NULL, null=True, blank=True, related_name="emails"
    )
    to_email = models.EmailField(max_length=254)
    template = models.CharField(max_length=20, blank=True, default="", help_text="Empty: free-form.")
    language = models.CharField(max_length=2, choices=LANGUAGES, default="de")
    subject = models.CharField(max_length=300)
    status = models.CharField(max_length=12, default="queued")
    status_rank = models.PositiveSmallIntegerField(default=1)
    message_id = models.CharField(max_length=300, blank=True, default="", help_text="Our Message-ID header.")
    provider_message_id = models.CharField(max_length=200, blank=True, default="")
    transport = models.CharField(max_length=20, blank=True, default="")
    error_message = models.CharField(max_length=500, blank=True, default="")
    idempotency_key = models.CharField(max_length=255, blank=True, default="")
    attempts = models.PositiveSmallIntegerField(default=0)
    ics_uid = models.CharField(max_length=255, blank=True, default="")
    ics_sequence = models.PositiveIntegerField(null=True, blank=True)
    ics_method = models.CharField(max_length=10, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "outbound email"
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["company", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="email_outbound_idempotency",
            )
        ]
        indexes = [
            models.Index(fields=["company", "created_at"], name="email_company_created"),
            models.Index(fields=["company", "to_email"], name="email_company_to"),
            models.Index(fields=["message_id"], name="email_message_id"),
            models.Index(fields=["provider_message_id"], name="email_provider_message_id"),
        ]

    def __str__(self) -> str:
        return f"{self.template or 'email'} to {self.to_email} ({self.status})"


class Suppression(models.Model):
    """An address this tenant never mails again until an operator removes it: it hard-bounced
    or its owner complained (marked the mail as spam)."""

    class Reason(models.TextChoices):
        HARD_BOUNCE = "hard_bounce"
        COMPLAINT = "complaint"
        MANUAL = "manual"

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="email_suppressions")
    address = models.EmailField(max_length=254, help_text="Lower-case.")
    reason = models.CharField(max_length=12, choices=Reason.choices)
    detail = models.CharField(max_length=300, blank=True, default="")
    email = models.ForeignKey(
        OutboundEmail, on_delete=models.SET_NULL, null=True, blank=True, related_name="suppressions"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["company", "address"], name="email_suppression_unique")
        ]

    def __str__(self) -> str:
        return f"{self.address} ({self.reason})"


class CalendarSequence(models.Model):
    """The iCalendar identity of one appointment: its UID and the SEQUENCE of the latest
    invitation sent, so that an update or a cancellation replaces the event in the customer's
    calendar instead of adding another."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+")
    appointment = models.OneToOneField(
        Appointment, on_delete=models.CASCADE, related_name="calendar_sequence"
    )
    uid = models.CharField(max_length=255)
    sequence = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.uid} #{self.sequence}"
