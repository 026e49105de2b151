"""The Google Calendar server's records: each tenant's Google credentials, which calendar
belongs to which branch or staff member, the busy time synced from those calendars, the events
written for appointments (with Google's ETag), push channels and the sync conflicts resolved.

Google is read through incremental sync (sync tokens) into BusyBlock rows, so availability
never waits on Google in the hot path.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from askpro.crypto import EncryptedTextField, SecretsModel
from askpro.models import Appointment, Branch, Company, Service, Staff


class GoogleAccount(SecretsModel):
    """One tenant's Google credentials: a service account (its JSON key, optionally acting as a
    Workspace user through domain-wide delegation) or an OAuth refresh token from the admin's
    "connect Google Calendar" flow. Every secret is encrypted at rest and write-only in the
    admin; without either the tenant's Google Calendar is not_configured."""

    class Mode(models.TextChoices):
        SERVICE_ACCOUNT = "service_account", "service account"
        OAUTH = "oauth", "OAuth (connected user)"

    company = models.OneToOneField(Company, on_delete=models.CASCADE, related_name="gcal_account")
    mode = models.CharField(max_length=20, choices=Mode.choices, default=Mode.OAUTH)
    service_account_key = EncryptedTextField(
        "service account key (JSON)", blank=True, default="", help_text="The key file Google issued."
    )
    delegated_user = models.EmailField(
        blank=True,
        default="",
        help_text="Domain-wide delegation: the Workspace user the service account acts as; "
        "empty: calendars shared with the service account.",
    )
    refresh_token = EncryptedTextField("OAuth refresh token", blank=True, default="")
    connected_as = models.CharField(max_length=254, blank=True, default="", help_text="Who connected.")
    push_secret = EncryptedTextField(
        "push channel secret", blank=True, default="", help_text="Signs the tokens of push channels."
    )
    two_way_sync = models.BooleanField(
        default=True, help_text="Write appointments into the staff's calendars and block Google busy time."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "Google Calendar account"

    def __str__(self) -> str:
        return f"Google Calendar of {self.company}"


class CalendarLink(models.Model):
    """A Google calendar of a tenant, belonging to a branch or a staff member (or to neither: a
    calendar only read), with the sync token of its last incremental sync."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="gcal_calendars")
    calendar_id = models.CharField(
        max_length=255, help_text="Google's calendar id (often an e-mail address)."
    )
    staff = models.OneToOneField(
        Staff, on_delete=models.SET_NULL, null=True, blank=True, related_name="gcal_calendar"
    )
    branch = models.ForeignKey(
        Branch, on_delete=models.SET_NULL, null=True, blank=True, related_name="gcal_calendars"
    )
    sync_token = models.CharField(max_length=500, blank=True, default="")
    last_synced_at = models.DateTimeField(null=True, blank=True)
    full_syncs = models.PositiveIntegerField(default=0, help_text="Full syncs so far (first one and 410s).")

    class Meta:
        verbose_name = "calendar"
        constraints = [
            models.UniqueConstraint(fields=["company", "calendar_id"], name="gcal_calendar_unique"),
        ]

    def __str__(self) -> str:
        return self.calendar_id


class ServiceBuffer(models.Model):
    """Extra time a service blocks around its appointments in the staff's calendar."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="gcal_buffers")
    service = models.OneToOneField(Service, on_delete=models.CASCADE, related_name="gcal_buffer")
    before_minutes = models.PositiveSmallIntegerField(default=0)
    after_minutes = models.PositiveSmallIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.service}: {self.before_minutes}+{self.after_minutes} min"


class BusyBlock(models.Model):
    """A busy interval of a calendar as the last sync saw it (one per Google event). Events
    written for appointments are marked, so the appointment is not counted twice."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="gcal_busy")
    calendar = models.ForeignKey(CalendarLink, on_delete=models.CASCADE, related_name="busy")
    event_id = models.CharField(max_length=1024)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    etag = models.CharField(max_length=100, blank=True, default="")
    appointment_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["calendar", "event_id"], name="gcal_busy_unique"),
        ]
        indexes = [models.Index(fields=["company", "starts_at"], name="gcal_busy_company_start")]

    def __str__(self) -> str:
        return f"{self.starts_at:%Y-%m-%d %H:%M}–{self.ends_at:%H:%M}"


class EventLink(models.Model):
    """The Google event written for an appointment, with the ETag Google gave it last: an
    update or delete sends it as If-Match, so a change made in Google meanwhile is not lost
    silently (412) but resolved by the conflict rule."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="gcal_event_links")
    appointment = models.OneToOneField(
        Appointment, on_delete=models.SET_NULL, null=True, blank=True, related_name="gcal_event"
    )
    calendar = models.ForeignKey(CalendarLink, on_delete=models.CASCADE, related_name="event_links")
    event_id = models.CharField(max_length=1024)
    etag = models.CharField(max_length=100, blank=True, default="")
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["calendar", "event_id"], name="gcal_event_link_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} ({self.appointment_id})"


class PushChannel(models.Model):
    """A push channel Google opened on a calendar's events (watch_calendar). Its token is an
    HMAC of its id under the tenant's push secret, so a notification proves both."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="gcal_channels")
    calendar = models.ForeignKey(CalendarLink, on_delete=models.CASCADE, related_name="channels")
    channel_id = models.CharField(max_length=64, unique=True)
    resource_id = models.CharField(max_length=255, blank=True, default="")
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    last_message_number = models.BigIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["company"], name="gcal_channel_active", condition=Q(stopped_at__isnull=True))
        ]

    def __str__(self) -> str:
        return self.channel_id


class SyncConflict(models.Model):
    """A change on both sides (or a Google-side edit of an appointment's event), and how the
    documented rule resolved it (docs/servers/gcal.md, "Conflicts")."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="gcal_conflicts")
    appointment_id = models.BigIntegerField(null=True, blank=True)
    calendar_id = models.CharField(max_length=255)
    event_id = models.CharField(max_length=1024)
    kind = models.CharField(max_length=40)
    resolution = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.resolution}"
