"""Orchestrator state: API keys, operator grants, the append-only audit log and per-minute
metric rollups."""

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.utils import timezone

# Latency histogram bucket upper bounds in milliseconds; the last bucket is open-ended.
LATENCY_BUCKETS_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class ApiKey(models.Model):
    """A key for the API and MCP endpoints. Only a hash of the secret is stored.

    A key with a tenant acts only on that tenant; a key without one is a platform key.
    """

    tenant = models.ForeignKey(
        "askpro.Company",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="api_keys",
        help_text="Empty for a platform key.",
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False, help_text="Shown, not secret.")
    secret_hash = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list, help_text='e.g. ["database:read", "stripe:*"] or ["*"]')
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_platform(self) -> bool:
        return self.tenant_id is None

    def is_usable(self, now=None) -> bool:
        now = now or timezone.now()
        if self.revoked_at is not None and self.revoked_at <= now:
            return False
        return not (self.expires_at is not None and self.expires_at <= now)


class AuditEntry(models.Model):
    """One row per orchestrated call. Append-only: the admin reads it, nothing edits it."""

    class Outcome(models.TextChoices):
        SUCCESS = "success"
        ERROR = "error"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    request_id = models.CharField(max_length=64)
    transport = models.CharField(max_length=16, default="internal")
    principal = models.CharField(max_length=120, help_text="Key prefix, user or system.")
    api_key = models.ForeignKey(ApiKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    user_id = models.BigIntegerField(null=True, blank=True)
    # Indexed by audit_tenant_created (tenant first): a second index would only slow the inserts.
    tenant = models.ForeignKey(
        "askpro.Company", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    service = models.CharField(max_length=50)
    operation = models.CharField(max_length=80)
    params = models.JSONField(default=dict, help_text="Secrets redacted.")
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    error_code = models.CharField(max_length=32, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    duration_ms = models.FloatField()
    idempotency_key = models.CharField(max_length=255, blank=True, default="")
    trace_id = models.CharField(
        max_length=32,
        blank=True,
        default="",
        help_text="The call's OpenTelemetry trace id (32 hex digits); empty while tracing is off.",
    )

    class Meta:
        verbose_name_plural = "audit entries"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "created_at"], name="audit_tenant_created"),
            models.Index(fields=["service", "operation", "created_at"], name="audit_op_created"),
            # Exact lookups of one request; a plain btree, without the LIKE index db_index adds.
            models.Index(fields=["request_id"], name="audit_request_id"),
            # From a trace in the tracing backend to its audit rows. Partial: with tracing off
            # (every row '') the index costs the inserts nothing.
            models.Index(fields=["trace_id"], name="audit_trace_id", condition=~models.Q(trace_id="")),
        ]

    def __str__(self) -> str:
        return f"{self.service}.{self.operation} {self.outcome} ({self.request_id})"


class MetricRollup(models.Model):
    """Calls per (minute, service, operation, tenant) with a latency histogram.

    `calls` counts every answered call; each failed one is also counted in exactly one of
    caller_errors, not_configured and service_failures (contracts.outcome_class), so the
    successes are what is left. Pages and reports read these rows; they never scan the audit log.
    """

    minute = models.DateTimeField()
    service = models.CharField(max_length=50)
    operation = models.CharField(max_length=80)
    # 0 stands for "no tenant" so that the unique key works on every database.
    tenant_id = models.BigIntegerField(default=0)
    calls = models.PositiveIntegerField(default=0)
    caller_errors = models.PositiveIntegerField(default=0, help_text="Refused or unservable as asked.")
    not_configured = models.PositiveIntegerField(default=0, help_text="Answered not_configured.")
    service_failures = models.PositiveIntegerField(
        default=0, help_text="Upstream error, timeout, internal error or circuit open."
    )
    total_ms = models.FloatField(default=0)
    max_ms = models.FloatField(default=0)
    # Calls per latency bucket: b0 counts calls <= LATENCY_BUCKETS_MS[0], ..., b13 the overflow.
    # Columns rather than JSON so that one portable upsert can increment them atomically.
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
        constraints = [
            models.UniqueConstraint(
                fields=["minute", "service", "operation", "tenant_id"], name="rollup_unique_minute"
            )
        ]
        indexes = [models.Index(fields=["service", "minute"], name="rollup_service_minute")]

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M} {self.service}.{self.operation}"

    def bucket_counts(self) -> list[int]:
        return [getattr(self, f"b{i}") for i in range(len(LATENCY_BUCKETS_MS) + 1)]


class BreakerTransition(models.Model):
    """One change of a service's circuit breaker state (written by the process that made it)."""

    class State(models.TextChoices):
        CLOSED = "closed"
        OPEN = "open"
        HALF_OPEN = "half_open"

    service = models.CharField(max_length=50)
    from_state = models.CharField(max_length=10, choices=State.choices)
    to_state = models.CharField(max_length=10, choices=State.choices)
    reason = models.CharField(max_length=300)
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["service", "at"], name="breaker_service_at")]
        permissions = [("reset_breaker", "Can reset a circuit breaker")]

    def __str__(self) -> str:
        return f"{self.service}: {self.from_state} -> {self.to_state}"


class HealthRun(models.Model):
    """One run of every health check (platform and MCP servers), stored whole.

    Written by `mcp_core.health.run_checks_coalesced`; anonymous `/health/` answers with the
    newest row's aggregate, and callers within MCP_HEALTH_REUSE_SECONDS reuse it.
    """

    class Trigger(models.TextChoices):
        HEALTH_PAGE = "health_page"
        API = "api"
        COMMAND = "command"
        DASHBOARD = "dashboard"
        SCHEDULE = "schedule"
        STARTUP = "startup"
        MIGRATION = "migration"

    checked_at = models.DateTimeField(default=timezone.now, db_index=True)
    status = models.CharField(max_length=16)
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    duration_ms = models.FloatField(null=True, blank=True)
    # name -> {"status", "latency_ms", "detail"}
    services = models.JSONField(default=dict)
    platform = models.JSONField(default=dict)

    class Meta:
        ordering = ["-checked_at", "-id"]

    def __str__(self) -> str:
        return f"{self.checked_at:%Y-%m-%d %H:%M:%S} {self.status}"


class ServiceHealth(models.Model):
    """The latest health check of one MCP server (written with each HealthRun), for the dashboard."""

    service = models.CharField(max_length=50, unique=True)
    status = models.CharField(max_length=16)
    detail = models.TextField(blank=True, default="")
    latency_ms = models.FloatField(null=True, blank=True)
    checked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["service"]
        verbose_name_plural = "service health"

    def __str__(self) -> str:
        return f"{self.service}: {self.status}"


class OperatorAccess(models.Model):
    """Operation scopes granted to people who sign in to the admin: to one user or to every
    member of a group, on every tenant or only on the tenants listed.

    A user's rights on a tenant are the union of the scopes of their grants (their own and
    their groups') that cover that tenant. Superusers need no grant: they act with "*".
    See docs/admin-rights.md and mcp_core.operators.
    """

    name = models.CharField(max_length=100, help_text="What this grant is for, e.g. “support, read only”.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="operator_access",
        help_text="Either a user…",
    )
    group = models.ForeignKey(
        Group,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="operator_access",
        help_text="…or a group (every member).",
    )
    scopes = models.JSONField(default=list, help_text='e.g. ["database:read", "webhooks:admin"] or ["*"]')
    tenants = models.ManyToManyField(
        "askpro.Company",
        blank=True,
        related_name="+",
        help_text="Only these tenants; leave empty for every tenant.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "operator access"
        verbose_name_plural = "operator access"
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(user__isnull=False, group__isnull=True)
                | models.Q(user__isnull=True, group__isnull=False),
                name="operator_access_user_xor_group",
                violation_error_message="Grant to a user or to a group: choose exactly one of the two.",
            )
        ]
        permissions = [("use_console", "Can call operations from the admin (console and admin actions)")]

    def __str__(self) -> str:
        return f"{self.name} ({self.user or self.group})"
