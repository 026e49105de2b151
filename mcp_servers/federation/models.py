"""Remote MCP servers registered by operators, and the pinned versions of their tools."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from askpro.crypto import EncryptedTextField, SecretsModel
from askpro.models import Company

SLUG_PATTERN = r"^[a-z][a-z0-9]{0,29}$"


class RemoteServer(SecretsModel):
    """A remote MCP server (Streamable HTTP) whose approved tools are the operations of the
    service `fed_<slug>`. It is called with the platform's own credential (`bearer_token`),
    never with the caller's."""

    class Era(models.TextChoices):
        LEGACY = "legacy", "2025-11-25 and earlier (initialize handshake)"
        MODERN = "2026-07-28", "2026-07-28 (stateless)"

    class Source(models.TextChoices):
        MANUAL = "manual", "added by an operator"
        MARKETPLACE = "marketplace", "installed from the MCP registry"

    slug = models.CharField(
        max_length=30,
        unique=True,
        validators=[RegexValidator(SLUG_PATTERN, "lower-case letters and digits, starting with a letter")],
        help_text="The service is named fed_<slug>; its tools are fed_<slug>_<tool>.",
    )
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    url = models.URLField("Streamable HTTP URL", max_length=500)
    era = models.CharField("protocol era", max_length=20, choices=Era.choices, default=Era.LEGACY)
    bearer_token = EncryptedTextField(
        "bearer token",
        blank=True,
        default="",
        help_text="The platform's own credential for this server (sent as Authorization: Bearer).",
    )
    enabled = models.BooleanField(
        default=False, help_text="Its approved tools are offered only while it is enabled."
    )
    all_tenants = models.BooleanField(
        default=False, help_text="Every tenant may use it; otherwise only the tenants chosen below."
    )
    tenants = models.ManyToManyField(Company, blank=True, related_name="+")
    timeout_seconds = models.FloatField(
        "deadline (seconds)",
        null=True,
        blank=True,
        validators=[MinValueValidator(0.1), MaxValueValidator(600)],
        help_text="Of one remote call; empty: FEDERATION_DEFAULT_TIMEOUT.",
    )
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.MANUAL)
    registry_name = models.CharField(max_length=200, blank=True, default="")
    registry_version = models.CharField(max_length=100, blank=True, default="")
    last_sync_at = models.DateTimeField(null=True, blank=True)
    last_sync_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return f"{self.title} (fed_{self.slug})"

    @property
    def service(self) -> str:
        return f"fed_{self.slug}"

    @property
    def timeout(self) -> float:
        return self.timeout_seconds or settings.FEDERATION_DEFAULT_TIMEOUT


class RemoteTool(models.Model):
    """One fetched version of one remote tool. The approved version is the pinned one: a
    changed description or schema is stored as a new pending version and is not used until
    an operator approves it."""

    class Status(models.TextChoices):
        PENDING = "pending", "waiting for approval"
        APPROVED = "approved", "approved (pinned)"
        SUPERSEDED = "superseded", "replaced by a newer approved version"
        REJECTED = "rejected", "rejected"
        INVALID = "invalid", "refused: not a valid tool definition"

    server = models.ForeignKey(RemoteServer, on_delete=models.CASCADE, related_name="tools")
    name = models.CharField("remote name", max_length=128)
    operation = models.CharField(max_length=128, help_text="Its operation name here (snake_case).")
    version = models.PositiveIntegerField(default=1)
    digest = models.CharField(max_length=64, help_text="SHA-256 of the canonical definition.")
    definition = models.JSONField(help_text="description, inputSchema, outputSchema, annotations, title")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    problem = models.TextField(blank=True, default="")
    removed = models.BooleanField(default=False, help_text="The remote server no longer lists it.")
    fetched_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["server", "name", "-version"]
        permissions = [("approve_remotetool", "Can approve or reject remote tool versions")]
        constraints = [
            models.UniqueConstraint(fields=["server", "name", "version"], name="fed_tool_version_unique"),
            models.UniqueConstraint(
                fields=["server", "name"],
                condition=models.Q(status="approved"),
                name="fed_tool_one_approved",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.server.service}: {self.name} v{self.version} ({self.status})"
