"""The appointment notifications of each tenant: its settings (reminder offsets, channel order),
the reminder plan of every appointment, and every outbound message the workflow asked for.

A reminder is one row per (appointment, offset, generation). A reschedule starts a new
generation (the old rows are cancelled); a send is claimed by conditional status transitions
(planned -> queued -> sending), and its idempotency key, derived from (appointment, offset,
generation, channel), is passed to the messaging and email operations, which dedupe on it: a
worker that dies mid-send is retried without texting the customer twice.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from askpro.models import Appointment, Company

CHANNELS = ("whatsapp", "sms", "email")
DEFAULT_OFFSETS = "24h, 2h"
DEFAULT_CHANNEL_ORDER = "whatsapp, sms, email"
_OFFSET = re.compile(r"^(\d+)\s*([mhd])$")
_UNIT_MINUTES = {"m": 1, "h": 60, "d": 1440}
MAX_OFFSET_MINUTES = 30 * 1440


def parse_offsets(text: str) -> list[int]:
    """ "24h, 2h, 30m, 2d" -> minutes, largest first, without repeats. ValueError naming the bad part."""
    minutes: set[int] = set()
    for part in (p.strip().lower() for p in (text or "").split(",")):
        if not part:
            continue
        match = _OFFSET.match(part)
        if not match:
            raise ValueError(f"{part!r} is not an offset like 24h, 90m or 2d")
        value = int(match.group(1)) * _UNIT_MINUTES[match.group(2)]
        if not 1 <= value <= MAX_OFFSET_MINUTES:
            raise ValueError(f"{part!r} must be between 1 minute and 30 days")
        minutes.add(value)
    return sorted(minutes, reverse=True)


def parse_channels(text: str) -> list[str]:
    """ "whatsapp, sms, email" -> the channels in order. ValueError naming an unknown one."""
    order: list[str] = []
    for part in (p.strip().lower() for p in (text or "").split(",")):
        if not part:
            continue
        if part not in CHANNELS:
            raise ValueError(f"{part!r} is not a channel ({', '.join(CHANNELS)})")
        if part not in order:
            order.append(part)
    return order


def format_offset(minutes: int) -> str:
    for unit, size in (("d", 1440), ("h", 60)):
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


class NotificationSettings(models.Model):
    """One tenant's confirmations and reminders. A tenant without a row gets the defaults."""

    company = models.OneToOneField(Company, on_delete=models.CASCADE, related_name="notification_settings")
    reminders_enabled = models.BooleanField(default=True)
    confirmations_enabled = models.BooleanField(
        default=True, help_text="Send a message when an appointment is booked, moved or cancelled."
    )
    reminder_offsets = models.CharField(
        max_length=200,
        default=DEFAULT_OFFSETS,
        help_text="Before the appointment, comma-separated: 24h, 2h, 30m, 2d.",
    )
    channel_order = models.CharField(
        max_length=100,
        default=DEFAULT_CHANNEL_ORDER,
        help_text="Tried in this order when the customer chose no channel, or theirs is unavailable, "
        "opted out or fails: whatsapp, sms, email.",
    )
    whatsapp_templates = models.JSONField(
        default=dict,
        blank=True,
        help_text='Approved WhatsApp content SIDs per message, e.g. {"reminder": "HX…"}; variables 1 = '
        "customer name, 2 = date, 3 = time. Without one, WhatsApp gets free text, which it accepts only "
        "within 24 hours of the customer's last WhatsApp message (otherwise the next channel is used).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "notification settings"
        verbose_name_plural = "notification settings"

    def __str__(self) -> str:
        return f"Notifications of {self.company}"

    def clean(self) -> None:
        errors = {}
        for name, parse in (("reminder_offsets", parse_offsets), ("channel_order", parse_channels)):
            try:
                if not parse(getattr(self, name)) and name == "channel_order":
                    errors[name] = "name at least one channel"
            except ValueError as exc:
                errors[name] = str(exc)
        templates = self.whatsapp_templates or {}
        if not isinstance(templates, dict) or any(
            not isinstance(v, str) or not re.fullmatch(r"HX[0-9a-fA-F]{32}", v) for v in templates.values()
        ):
            errors["whatsapp_templates"] = 'a mapping of message kind to a content SID "HX" + 32 hex digits'
        if errors:
            raise ValidationError(errors)

    @property
    def offsets(self) -> list[int]:
        return parse_offsets(self.reminder_offsets)

    @property
    def channels(self) -> list[str]:
        return parse_channels(self.channel_order)


class Reminder(models.Model):
    """One planned reminder of one appointment at one offset, in one generation of its plan."""

    class Status(models.TextChoices):
        PLANNED = "planned"  # waiting for its time
        QUEUED = "queued"  # due, handed to a worker by a sweep
        SENDING = "sending"  # a worker claimed it and is sending
        SENT = "sent"
        FAILED = "failed"  # no channel took it, after every attempt
        SKIPPED = "skipped"  # nothing to send (no contact, too late, appointment over)
        CANCELLED = "cancelled"  # the appointment was moved or cancelled

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="reminders")
    # No index of its own: reminder_once_per_offset leads with appointment (a reminder is
    # written three times on its way out: one index entry less each time).
    appointment = models.ForeignKey(
        Appointment, on_delete=models.CASCADE, related_name="reminders", db_index=False
    )
    offset_minutes = models.PositiveIntegerField()
    generation = models.PositiveIntegerField(default=1)
    starts_at = models.DateTimeField(help_text="The appointment's start this reminder was planned for.")
    due_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PLANNED)
    attempts = models.PositiveSmallIntegerField(default=0)
    queued_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    channel = models.CharField(max_length=10, blank=True, default="", help_text="The channel that took it.")
    note = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["appointment", "-generation", "-offset_minutes"]
        constraints = [
            models.UniqueConstraint(
                fields=["appointment", "offset_minutes", "generation"], name="reminder_once_per_offset"
            )
        ]
        indexes = [
            # The sweep's two questions: what is due, and what was handed out too long ago.
            models.Index(fields=["due_at"], name="reminder_due", condition=Q(status="planned")),
            models.Index(
                fields=["status", "queued_at"],
                name="reminder_in_flight",
                condition=Q(status__in=["queued", "sending"]),
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{format_offset(self.offset_minutes)} before appointment {self.appointment_id} ({self.status})"
        )

    @property
    def idempotency_base(self) -> str:
        return f"reminder:{self.appointment_id}:{self.offset_minutes}:{self.generation}"


class Notification(models.Model):
    """One outbound message the workflow asked a server for (one per channel tried), with what
    the server answered and, later, the delivery status and price its callbacks reported."""

    class Kind(models.TextChoices):
        CONFIRMATION = "confirmation"
        RESCHEDULED = "rescheduled"
        CANCELLATION = "cancellation"
        REMINDER = "reminder"

    class Status(models.TextChoices):
        SENT = "sent"  # accepted by the server (and its provider)
        DEFERRED = "deferred"  # accepted, held until the tenant's quiet hours end
        DELIVERED = "delivered"
        UNDELIVERED = "undelivered"  # the provider failed to deliver it after accepting it
        REFUSED = "refused"  # the server refused it (opted out, suppressed, not configured, ...)
        FAILED = "failed"  # the server or provider failed; may be retried
        SKIPPED = "skipped"  # the channel was not tried: no number or address

    # No index of its own: notification_once_per_key and notification_recipient lead with company.
    company = models.ForeignKey(
        Company, on_delete=models.CASCADE, related_name="notifications", db_index=False
    )
    appointment = models.ForeignKey(
        Appointment, on_delete=models.SET_NULL, null=True, blank=True, related_name="notifications"
    )
    reminder = models.ForeignKey(
        Reminder, on_delete=models.SET_NULL, null=True, blank=True, related_name="notifications"
    )
    kind = models.CharField(max_length=12, choices=Kind.choices)
    channel = models.CharField(max_length=10)
    recipient = models.CharField(max_length=254, blank=True, default="")
    status = models.CharField(max_length=12, choices=Status.choices)
    service = models.CharField(max_length=20, blank=True, default="")
    message_id = models.BigIntegerField(null=True, blank=True, help_text="The server's record of it.")
    error_code = models.CharField(max_length=30, blank=True, default="")
    error_message = models.CharField(max_length=500, blank=True, default="")
    price = models.DecimalField(max_digits=12, decimal_places=5, null=True, blank=True)
    price_unit = models.CharField(max_length=3, blank=True, default="")
    idempotency_key = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["company", "idempotency_key"], name="notification_once_per_key")
        ]
        indexes = [
            models.Index(fields=["service", "message_id"], name="notification_message"),
            models.Index(fields=["company", "recipient", "created_at"], name="notification_recipient"),
            models.Index(fields=["created_at", "channel"], name="notification_created_channel"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} by {self.channel} to {self.recipient or '-'} ({self.status})"
