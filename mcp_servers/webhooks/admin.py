"""Admin: stored webhook events (dead letters included) with a replay action, and the
refusal counters. Events are evidence: nothing here edits them by hand."""

from django.contrib import admin, messages
from django.db import transaction

from mcp_core.admin_scoping import TenantScopedAdmin
from mcp_core.operators import CONSOLE_PERMISSION, principal_for_user
from mcp_core.pipeline import call_operation

from .models import RejectedDelivery, WebhookEvent


@admin.register(WebhookEvent)
class WebhookEventAdmin(TenantScopedAdmin, admin.ModelAdmin):
    list_display = (
        "id",
        "provider",
        "type",
        "status",
        "tenant",
        "attempts",
        "duplicate_count",
        "received_at",
    )
    list_filter = ("status", "provider", "verified_by")
    search_fields = ("event_id", "type", "last_error")
    list_select_related = ("tenant",)
    date_hierarchy = "received_at"
    actions = ("replay",)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_replay_permission(self, request) -> bool:
        return request.user.has_perm(CONSOLE_PERMISSION)

    @admin.action(
        description="Replay selected events (through the webhook server, audited)",
        permissions=["replay"],
    )
    def replay(self, request, queryset):
        outcomes: dict[str, int] = {}
        principals = {}
        for event in queryset.order_by("pk")[:500]:
            # With the operator's own rights on the event's tenant (webhooks:admin there).
            tenant = event.tenant_id
            if tenant not in principals:
                principals[tenant] = principal_for_user(request.user, tenant=tenant)
            with transaction.atomic():
                response = call_operation(
                    "webhooks",
                    "replay_event",
                    {"id": event.pk},
                    principal=principals[tenant],
                    tenant=tenant,
                    transport="admin",
                )
            outcome = response.data["outcome"] if response.success else response.error["code"]
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        summary = ", ".join(f"{count} {name}" for name, count in sorted(outcomes.items()))
        self.message_user(request, f"Replay: {summary}", messages.INFO)


@admin.register(RejectedDelivery)
class RejectedDeliveryAdmin(admin.ModelAdmin):
    list_display = ("hour", "provider", "reason", "count", "last_seen_at")
    list_filter = ("provider", "reason")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
