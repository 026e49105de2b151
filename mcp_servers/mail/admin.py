"""Admin: each tenant's email account (credentials write-only), its outbound emails with their
status (evidence: read-only), the suppression list (remove with delete), and a preview of
every template in either language, with sample values or a real appointment or invoice."""

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path, reverse

from askpro.admin_secrets import SecretFieldsAdmin
from askpro.models import Company
from mcp_core.admin_scoping import TenantScopedAdmin
from mcp_core.contracts import MCPError
from mcp_core.operators import rights_for

from . import services
from .models import TEMPLATES, EmailAccount, OutboundEmail, Suppression


@admin.register(EmailAccount)
class EmailAccountAdmin(TenantScopedAdmin, SecretFieldsAdmin):
    list_display = ("company", "provider", "smtp_host", "from_email", "updated_at")
    search_fields = ("company__name", "company__slug", "from_email")
    list_select_related = ("company",)
    autocomplete_fields = ("company",)
    fieldsets = (
        (None, {"fields": ("company",)}),
        ("Sender and branding", {"fields": ("from_name", "from_email", "reply_to", "brand_color", "logo_url", "footer")}),
        ("SMTP", {"fields": ("smtp_host", "smtp_port", "smtp_security", "smtp_username", "smtp_password")}),
        ("Provider (django-anymail)", {"fields": ("provider", "api_key", "sender_domain", "webhook_secret")}),
    )  # fmt: skip


class PreviewForm(forms.Form):
    company = forms.ModelChoiceField(queryset=Company.objects.order_by("name"))
    template = forms.ChoiceField(choices=[(t, t) for t in TEMPLATES])
    language = forms.ChoiceField(choices=[("", "the customer's / company's"), ("de", "Deutsch"), ("en", "English")], required=False)  # fmt: skip
    appointment_id = forms.IntegerField(min_value=1, max_value=2**63 - 1, required=False, help_text="Empty: sample values.")  # fmt: skip
    invoice_id = forms.IntegerField(min_value=1, max_value=2**63 - 1, required=False)


@admin.register(OutboundEmail)
class OutboundEmailAdmin(TenantScopedAdmin, admin.ModelAdmin):
    list_display = ("id", "company", "to_email", "template", "language", "status", "ics_sequence", "created_at", "sent_at")  # fmt: skip
    list_filter = ("status", "template", "language", "company")
    search_fields = ("to_email", "message_id", "subject")
    list_select_related = ("company",)
    date_hierarchy = "created_at"
    change_list_template = "admin/mcp_email/outboundemail_change_list.html"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_urls(self):
        return [
            path("preview/", self.admin_site.admin_view(self.preview_view), name="mcp_email_preview"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra = {"preview_url": reverse("admin:mcp_email_preview"), **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)

    def preview_view(self, request):
        """The user's own rights: viewing emails lets them preview; a real appointment or
        invoice needs the right to view those too."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = PreviewForm(request.GET or None)
        # Only the tenants the user may act for (all of them for most; see mcp_core.admin_scoping).
        form.fields["company"].queryset = rights_for(request).tenants()
        shown, error = None, ""
        if form.is_valid():
            data = form.cleaned_data
            for name, perm in (
                ("appointment_id", "askpro.view_appointment"),
                ("invoice_id", "askpro.view_invoice"),
            ):
                if data[name] and not request.user.has_perm(perm):
                    raise PermissionDenied
            try:
                shown = services.preview(
                    data["company"], data["template"], language=data["language"] or None,
                    appointment_id=data["appointment_id"], invoice_id=data["invoice_id"],
                )  # fmt: skip
            except MCPError as exc:
                error = exc.message
        context = {
            **self.admin_site.each_context(request),
            "title": "Email template preview",
            "opts": self.model._meta,
            "form": form,
            "shown": shown,
            "error": error,
        }
        return TemplateResponse(request, "admin/mcp_email/preview.html", context)


@admin.register(Suppression)
class SuppressionAdmin(TenantScopedAdmin, admin.ModelAdmin):
    list_display = ("address", "company", "reason", "detail", "created_at")
    list_filter = ("reason", "company")
    search_fields = ("address", "company__name")
    list_select_related = ("company",)
    readonly_fields = ("email", "created_at")
    raw_id_fields = ("email",)

    def has_change_permission(self, request, obj=None):
        return False  # an entry is added or removed, never edited into another address
