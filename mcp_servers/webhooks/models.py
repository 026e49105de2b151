"""Stored webhook deliveries and the count of refused ones.

A verified delivery is stored before anything else happens (persist first, answer fast);
processing runs later in a Celery task. The unique (provider, idempotency_key) pair is what
makes a delivery that arrives twice, or twice at once, take effect once.
"""

from django.db import models
from django.db.models import Q


class WebhookEvent(models.Model):
    """One verified provider event. `failed` is the dead letter: retries are exhausted."""

    class Status(models.TextChoices):
        RECEIVED = "received", "received (waiting to be processed)"
        PROCESSING = "processing"
        PROCESSED = "processed"
        FAILED = "failed", "failed (dead letter)"

    # A provider some server declares (mcp_core.webhooks); not a fixed choice, so that a new
    # provider needs no migration here.
    provider = models.CharField(max_length=10)
    event_id = models.CharField(max_length=200, help_text="The provider's id for the event, if any.")
    idempotency_key = models.CharField(max_length=200)
    type = models.CharField(max_length=100)
    tenant = models.ForeignKey(
        "askpro.Company",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="webhook_events",
        help_text="Resolved at ingestion when possible, else by the handler.",
    )
    verified_by = models.CharField(
        max_length=10, default="platform", help_text="Whose secret verified it: platform or tenant."
    )
    payload = models.JSONField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RECEIVED)
    duplicate_count = models.PositiveIntegerField(default=0, help_text="Further deliveries of this event.")
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    result = models.CharField(max_length=300, blank=True, default="", help_text="What the handler did.")
    received_at = models.DateTimeField(auto_now_add=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(
        null=True, blank=True, help_text="A worker holds the event until then."
    )
    processed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "idempotency_key"], name="webhook_unique_key_per_provider"
            )
        ]
        indexes = [
            models.Index(fields=["provider", "received_at"], name="webhook_provider_received"),
            models.Index(fields=["tenant", "received_at"], name="webhook_tenant_received"),
            models.Index(
                fields=["status", "next_attempt_at"],
                name="webhook_pending",
                condition=Q(status__in=["received", "processing"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.type} {self.event_id} ({self.status})"


class RejectedDelivery(models.Model):
    """Deliveries refused at the door (bad or missing signature), counted per provider,
    reason and hour. The payload is deliberately not stored: it is unauthenticated input."""

    provider = models.CharField(max_length=10)
    reason = models.CharField(max_length=40)
    hour = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)
    last_seen_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "rejected deliveries"
        ordering = ["-hour"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "reason", "hour"], name="rejected_unique_bucket")
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.reason} x{self.count} ({self.hour:%Y-%m-%d %H:00})"
