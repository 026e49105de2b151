"""The messaging server's records: each tenant's Twilio account, every message sent or received,
and the customers who opted out.

Status updates arrive out of order (Twilio does not order its callbacks), so a message keeps the
rank of its status and only a higher rank replaces it (STATUS_RANK): a late "sent" never
overwrites "delivered".
"""

from __future__ import annotations

import datetime as dt

from django.db import models
from django.db.models import Q
from django.utils import timezone

from askpro.crypto import EncryptedTextField, SecretsModel
from askpro.models import Company

# Higher replaces lower; equal ranks are final alternatives and the first one stays.
STATUS_RANK = {
    "deferred": 0,
    "accepted": 1,
    "scheduled": 1,
    "queued": 2,
    "sending": 3,
    "sent": 4,
    "receiving": 4,
    "received": 5,
    "delivered": 5,
    "undelivered": 5,
    "failed": 5,
    "canceled": 5,
    "partially_delivered": 5,
    "read": 6,
}
FINAL_STATUSES = frozenset(s for s, rank in STATUS_RANK.items() if rank >= 5)


class MessagingAccount(SecretsModel):
    """One tenant's Twilio account and messaging rules. Every credential is encrypted at rest
    and write-only in the admin; without account SID, auth token and a sender the tenant's
    messaging is not_configured."""

    company = models.OneToOneField(Company, on_delete=models.CASCADE, related_name="messaging_account")
    account_sid = EncryptedTextField("Twilio account SID", blank=True, default="")
    auth_token = EncryptedTextField("Twilio auth token", blank=True, default="")
    sender = EncryptedTextField(
        "SMS sender",
        blank=True,
        default="",
        help_text="A phone number in E.164 (+4930…) or a Messaging Service SID (MG…).",
    )
    whatsapp_sender = EncryptedTextField(
        "WhatsApp sender",
        blank=True,
        default="",
        help_text="The WhatsApp-enabled number (E.164) or a Messaging Service SID; empty: no WhatsApp.",
    )
    country = models.CharField(
        max_length=2, default="DE", help_text="ISO country whose numbers may be written without +prefix."
    )
    quiet_hours_start = models.TimeField(
        null=True, blank=True, default=dt.time(21, 0), help_text="In the company's time zone; empty: none."
    )
    quiet_hours_end = models.TimeField(null=True, blank=True, default=dt.time(8, 0))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "messaging account"

    def __str__(self) -> str:
        return f"Twilio account of {self.company}"


class Message(models.Model):
    """One SMS or WhatsApp message of a tenant, outbound or inbound, with Twilio's status and
    price. A deferred message (quiet hours) has no Twilio SID until it is sent."""

    class Channel(models.TextChoices):
        SMS = "sms"
        WHATSAPP = "whatsapp"

    class Direction(models.TextChoices):
        OUTBOUND = "outbound"
        INBOUND = "inbound"

    # No index of its own: the indexes below lead with company (each message written is one
    # index entry less to keep, twice: on insert and on the update with Twilio's answer).
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="messages", db_index=False)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    direction = models.CharField(max_length=10, choices=Direction.choices)
    customer_number = models.CharField(max_length=20, help_text="The customer's side, E.164.")
    sender = models.CharField(max_length=64, blank=True, default="", help_text="Our side as Twilio shows it.")
    body = models.TextField(blank=True, default="")
    content_sid = models.CharField(max_length=34, blank=True, default="")
    content_variables = models.JSONField(default=dict, blank=True)
    # Unique through Meta.constraints: a unique field would also get a LIKE index, never used.
    twilio_sid = models.CharField(max_length=34, null=True, blank=True)
    status = models.CharField(max_length=20, default="queued")
    status_rank = models.PositiveSmallIntegerField(default=2)
    error_code = models.PositiveIntegerField(null=True, blank=True)
    error_message = models.CharField(max_length=500, blank=True, default="")
    price = models.DecimalField(
        max_digits=12, decimal_places=5, null=True, blank=True, help_text="Twilio's price (a cost: ≥ 0)."
    )
    price_unit = models.CharField(max_length=3, blank=True, default="")
    segments = models.PositiveSmallIntegerField(null=True, blank=True)
    urgent = models.BooleanField(default=False)
    send_after = models.DateTimeField(null=True, blank=True, help_text="Deferred until then (quiet hours).")
    idempotency_key = models.CharField(max_length=255, blank=True, default="")
    keyword = models.CharField(max_length=12, blank=True, default="", help_text="Consent keyword, inbound.")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["company", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="messaging_message_idempotency",
            ),
            models.UniqueConstraint(fields=["twilio_sid"], name="messaging_message_twilio_sid"),
        ]
        indexes = [
            models.Index(fields=["company", "customer_number", "created_at"], name="messaging_thread"),
            models.Index(fields=["company", "created_at"], name="messaging_company_created"),
            models.Index(
                fields=["send_after"], name="messaging_deferred_due", condition=Q(status="deferred")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.direction} {self.customer_number} ({self.status})"


class OptOut(models.Model):
    """A customer's consent state with one tenant: opted out (STOP) until they opt back in
    (START). Kept after START as the record of when consent changed."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="messaging_opt_outs")
    number = models.CharField(max_length=20, help_text="E.164")
    opted_out = models.BooleanField(default=True)
    keyword = models.CharField(max_length=20, blank=True, default="")
    source = models.CharField(max_length=20, default="keyword", help_text="keyword, operator or twilio")
    note = models.CharField(max_length=200, blank=True, default="")
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "opt-out"
        ordering = ["-changed_at"]
        constraints = [models.UniqueConstraint(fields=["company", "number"], name="messaging_optout_unique")]

    def __str__(self) -> str:
        return f"{self.number} {'opted out' if self.opted_out else 'opted in'}"
