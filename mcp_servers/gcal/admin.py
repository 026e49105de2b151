"""Admin: each tenant's Google credential (write-only) with "connect Google Calendar", the
calendars and what they belong to, service buffers, push channels, and the conflict log."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from askpro.admin_secrets import SecretFieldsAdmin
from mcp_core.admin_scoping import TenantScopedAdmin

from . import connect
from .models import CalendarLink, GoogleAccount, PushChannel, ServiceBuffer, SyncConflict


@admin.register(GoogleAccount)
class GoogleAccountAdmin(TenantScopedAdmin, SecretFieldsAdmin):
    list_display = ("company", "mode", "connected_as", "two_way_sync", "connect_link", "updated_at")
    search_fields = ("company__name", "company__slug")
    list_select_related = ("company",)
    autocomplete_fields = ("company",)
    fieldsets = (
        (None, {"fields": ("company", "mode", "two_way_sync")}),
        ("OAuth (connect Google Calendar)", {"fields": ("refresh_token", "connected_as")}),
        ("Service account", {"fields": ("service_account_key", "delegated_user")}),
        ("Push", {"fields": ("push_secret",)}),
    )

    @admin.display(description="Google")
    def connect_link(self, obj: GoogleAccount) -> str:
        url = reverse("admin:mcp_gcal_googleaccount_connect", args=[obj.pk])
        return format_html('<a href="{}">Connect Google Calendar</a>', url)

    def get_urls(self):
        own = [
            path("<path:object_id>/connect/", self.admin_site.admin_view(self.connect_view),
                 name="mcp_gcal_googleaccount_connect"),
            path("callback/", self.admin_site.admin_view(self.callback_view), name="mcp_gcal_googleaccount_callback"),
        ]  # fmt: skip
        return own + super().get_urls()

    def _redirect_uri(self, request) -> str:
        return request.build_absolute_uri(reverse("admin:mcp_gcal_googleaccount_callback"))

    def connect_view(self, request, object_id: str):
        """Send the operator to Google's consent page for this account's tenant."""
        if not self.has_change_permission(request) or not self.has_add_permission(request):
            raise PermissionDenied
        if not object_id.isdigit():
            raise Http404("no such Google Calendar account")
        # Through the admin's queryset: a tenant-bound operator connects only their tenants.
        row = get_object_or_404(self.get_queryset(request), pk=int(object_id))
        try:
            return HttpResponseRedirect(
                connect.authorization_url(request.session, row.company, self._redirect_uri(request))
            )
        except connect.ConnectError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:mcp_gcal_googleaccount_changelist"))

    def callback_view(self, request):
        """Google sends the operator back here with a code: store the refresh token."""
        if not self.has_change_permission(request) or not self.has_add_permission(request):
            raise PermissionDenied
        try:
            row = connect.finish(
                request.session,
                state=request.GET.get("state", ""),
                code=request.GET.get("code", ""),
                error=request.GET.get("error", ""),
                redirect_uri=self._redirect_uri(request),
            )
        except connect.ConnectError as exc:
            self.message_user(request, f"Google Calendar not connected: {exc}", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:mcp_gcal_googleaccount_changelist"))
        self.message_user(request, f"Google Calendar connected for {row.company}.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:mcp_gcal_googleaccount_change", args=[row.pk]))


@admin.register(CalendarLink)
class CalendarLinkAdmin(TenantScopedAdmin, admin.ModelAdmin):
    list_display = ("calendar_id", "company", "staff", "branch", "last_synced_at", "full_syncs")
    list_filter = ("company",)
    search_fields = ("calendar_id", "company__name")
    list_select_related = ("company", "staff", "branch")
    autocomplete_fields = ("company",)
    readonly_fields = ("sync_token", "last_synced_at", "full_syncs")


@admin.register(ServiceBuffer)
class ServiceBufferAdmin(TenantScopedAdmin, admin.ModelAdmin):
    list_display = ("service", "company", "before_minutes", "after_minutes")
    list_select_related = ("service", "company")
    autocomplete_fields = ("company",)


@admin.register(PushChannel)
class PushChannelAdmin(TenantScopedAdmin, admin.ModelAdmin):
    list_display = ("channel_id", "company", "calendar", "expires_at", "stopped_at", "created_at")
    list_filter = ("company",)
    list_select_related = ("company", "calendar")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(SyncConflict)
class SyncConflictAdmin(TenantScopedAdmin, admin.ModelAdmin):
    list_display = ("created_at", "company", "kind", "appointment_id", "calendar_id", "resolution")
    list_filter = ("kind", "company")
    list_select_related = ("company",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
