"""Admin: each tenant's Twilio account (credentials write-only), its outbound and inbound
messages with status and cost, and the opt-out list. Messages are evidence: read-only."""

from django.contrib import admin

from askpro.admin_secrets import SecretFieldsAdmin
from mcp_core.admin_scoping import TenantScopedAdmin

from .models import Message, MessagingAccount, OptOut


@admin.register(MessagingAccount)
class MessagingAccountAdmin(TenantScopedAdmin, SecretFieldsAdmin):
    list_display = ("company", "country", "quiet_hours_start", "quiet_hours_end", "updated_at")
    search_fields = ("company__name", "company__slug")
    list_select_related = ("company",)
    autocomplete_fields = ("company",)
    fieldsets = (
        (None, {"fields": ("company", "country", ("quiet_hours_start", "quiet_hours_end"))}),
        ("Twilio", {"fields": ("account_sid", "auth_token", "sender", "whatsapp_sender")}),
    )


@admin.register(Message)
class MessageAdmin(TenantScopedAdmin, admin.ModelAdmin):
    list_display = (
        "id",
        "company",
        "channel",
        "direction",
        "customer_number",
        "status",
        "price",
        "price_unit",
        "error_code",
        "created_at",
        "send_after",
    )
    list_filter = ("direction", "channel", "status", "company")
    search_fields = ("customer_number", "twilio_sid")
    list_select_related = ("company",)
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(OptOut)
class OptOutAdmin(TenantScopedAdmin, admin.ModelAdmin):
    list_display = ("number", "company", "opted_out", "keyword", "source", "changed_at")
    list_filter = ("opted_out", "source", "company")
    search_fields = ("number", "company__name")
    list_select_related = ("company",)
    readonly_fields = ("changed_at",)
