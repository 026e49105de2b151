"""Dashboard state: stored health checks, hourly metric rollups, and the ImprovementEngine's
recommendations and runs."""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from askpro.models import Company
from mcp_core.models import LATENCY_BUCKETS_MS, ServiceHealth


class HealthCheckResult(ServiceHealth):
    """The latest health check of one server, as the dashboard shows it: a view of mcp_core's
    ServiceHealth, which every health run writes (the dashboard itself never runs checks)."""

    class Meta:
        proxy = True
        verbose_name = "health check result"
        permissions = [
            ("run_health_checks", "Can run the health checks now (dashboard)"),
            # mcp_core.live.LIVE_PERMISSION: the stream process checks it (mcp_core.live_stream).
            ("view_live_events", "Can receive live events on the dashboard pages (stream)"),
        ]


class MetricHourly(models.Model):
    """Per-minute MetricRollup rows compacted to the hour, for the 24 h and 7 d windows.

    Filled by the `metrics_compact_hourly` task; `RollupWatermark` says up to where, and
    readers take minute rows beyond it, so a late task never makes a page wrong, only slower.
    """

    hour = models.DateTimeField()
    service = models.CharField(max_length=50)
    operation = models.CharField(max_length=80)
    tenant_id = models.BigIntegerField(default=0)
    calls = models.PositiveIntegerField(default=0)
    # Same outcome classes as MetricRollup.
    caller_errors = models.PositiveIntegerField(default=0)
    not_configured = models.PositiveIntegerField(default=0)
    service_failures = models.PositiveIntegerField(default=0)
    total_ms = models.FloatField(default=0)
    max_ms = models.FloatField(default=0)
    # Same histogram columns as MetricRollup (see mcp_core.models.LATENCY_BUCKETS_MS).
    b0 = models.PositiveIntegerField(default=0)
    b1 = models.PositiveIntegerField(default=0)
    b2 = models.PositiveIntegerField(default=0)
    b3 = models.PositiveIntegerField(default=0)
    b4 = models.PositiveIntegerField(default=0)
    b5 = models.PositiveIntegerField(default=0)
    b6 = models.PositiveIntegerField(default=0)
    b7 = models.PositiveIntegerField(default=0)
    b8 = models.PositiveIntegerField(default=0)
    b9 = models.PositiveIntegerField(default=0)
    b10 = models.PositiveIntegerField(default=0)
    b11 = models.PositiveIntegerField(default=0)
    b12 = models.PositiveIntegerField(default=0)
    b13 = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "hourly metric"
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "service", "operation", "tenant_id"], name="hourly_unique_hour"
            )
        ]
        indexes = [models.Index(fields=["hour", "service"], name="hourly_hour_service")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h {self.service}.{self.operation}"


assert len(LATENCY_BUCKETS_MS) + 1 == 14  # the b0..b13 columns above


class RefusalHourly(models.Model):
    """Calls refused by the rate limiter or an open breaker, per hour, service and tenant.

    Compacted from the audit log together with MetricHourly, whose rows do not carry error codes.
    """

    hour = models.DateTimeField()
    service = models.CharField(max_length=50)
    tenant_id = models.BigIntegerField(default=0)
    error_code = models.CharField(max_length=32)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name_plural = "refusals per hour"
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "service", "tenant_id", "error_code"], name="refusal_unique_hour"
            )
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h {self.service} {self.error_code} x{self.count}"


class RollupWatermark(models.Model):
    """Up to which instant (exclusive) MetricHourly holds complete hours."""

    name = models.CharField(max_length=32, unique=True)
    until = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} < {self.until:%Y-%m-%d %H:%M}"


class Recommendation(models.Model):
    """One finding of an analyzer, kept up to date while it recurs.

    A fingerprint is unique among active (open or accepted) recommendations of an analyzer,
    so that a repeated finding updates the existing row instead of adding a duplicate.
    """

    class Severity(models.TextChoices):
        LOW = "low"
        MEDIUM = "medium"
        HIGH = "high"
        CRITICAL = "critical"

    class Status(models.TextChoices):
        OPEN = "open"
        ACCEPTED = "accepted"
        DISMISSED = "dismissed"
        APPLIED = "applied"

    ACTIVE_STATUSES = (Status.OPEN, Status.ACCEPTED)
    SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3, "critical": 4}

    analyzer = models.CharField(max_length=64)
    fingerprint = models.CharField(max_length=200)
    severity = models.CharField(max_length=8, choices=Severity.choices)
    title = models.CharField(max_length=300)
    evidence = models.JSONField(default=dict, help_text="The numbers and the window they come from.")
    suggested_action = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    times_seen = models.PositiveIntegerField(default=1)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    status_changed_by = models.CharField(max_length=150, blank=True, default="")
    note = models.TextField(blank=True, default="", help_text="What a self-healing action did, if any.")
    tenants = models.ManyToManyField(
        Company,
        blank=True,
        related_name="+",
        help_text="The tenants the finding is about or names; none: a platform finding.",
    )

    class Meta:
        ordering = ["-last_seen_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["analyzer", "fingerprint"],
                condition=Q(status__in=["open", "accepted"]),
                name="recommendation_unique_active",
            )
        ]
        indexes = [models.Index(fields=["status", "last_seen_at"], name="rec_status_seen")]

    def __str__(self) -> str:
        return f"[{self.severity}] {self.title}"


class ImprovementRun(models.Model):
    """One run of the ImprovementEngine: when, how long, what it found and what failed."""

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule"
        COMMAND = "command"
        PAGE = "page"
        TEST = "test"

    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    findings = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    # Per analyzer: {"name": ..., "findings": n, "ms": t, "skipped": reason | None, "error": text | None}
    analyzers = models.JSONField(default=list)
    errors = models.JSONField(default=list)
    healed = models.JSONField(default=list)

    class Meta:
        ordering = ["-started_at"]
        permissions = [("run_improvements", "Can run the improvement analysis now (improvements page)")]

    def __str__(self) -> str:
        return f"run {self.pk} at {self.started_at:%Y-%m-%d %H:%M}"
