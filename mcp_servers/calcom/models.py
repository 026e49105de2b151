"""Local records of the Cal.com server: synced event types and booking requests (idempotency)."""

from __future__ import annotations

from django.db import models

from askpro.models import Company


class CalcomEventType(models.Model):
    """A Cal.com event type as last synced for one tenant (sync_event_types)."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="calcom_event_types")
    calcom_id = models.PositiveIntegerField()
    title = models.CharField(max_length=255)
    slug = models.CharField(max_length=255)
    length_minutes = models.PositiveIntegerField()
    description = models.TextField(blank=True, default="")
    hidden = models.BooleanField(default=False)
    raw = models.JSONField(default=dict, blank=True)
    synced_at = models.DateTimeField()

    class Meta:
        ordering = ["company", "calcom_id"]
        constraints = [
            models.UniqueConstraint(fields=["company", "calcom_id"], name="calcom_event_type_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.calcom_id})"


class BookingRequest(models.Model):
    """One create_booking request, keyed by (tenant, idempotency key).

    The unique constraint is what makes create_booking idempotent under concurrency: the
    first caller inserts the row and talks to Cal.com; a duplicate finds the row and gets
    the stored outcome (or waits for it) instead of booking twice.
    """

    class Status(models.TextChoices):
        PENDING = "pending"  # a caller is talking to Cal.com right now
        SUCCEEDED = "succeeded"
        FAILED = "failed"  # Cal.com refused: a retry may try again
        UNCERTAIN = "uncertain"  # no answer (timeout/5xx): Cal.com may have booked; look before retrying

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="calcom_booking_requests")
    idempotency_key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the request's params")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    booking_uid = models.CharField(max_length=100, blank=True, default="")
    booking_id = models.PositiveBigIntegerField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True)
    error_code = models.CharField(max_length=32, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["company", "idempotency_key"], name="calcom_booking_request_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.idempotency_key[:12]}… {self.status}"
