"""The admin of federated remote MCP servers: registrations (credentials write-only), pinned
tool versions approved with their diff shown, and the marketplace (an MCP Registry)."""

from __future__ import annotations

from functools import partial
from urllib.parse import urlsplit

import anyio
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from askpro.admin_secrets import SecretFieldsAdmin
from mcp_core.contracts import MCPError

from . import services
from .client import AddressRefused, RegistryClient, resolve_checked, url_problem
from .models import RemoteServer, RemoteTool


class RemoteServerForm(forms.ModelForm):
    url = forms.URLField(label="Streamable HTTP URL", max_length=500, assume_scheme="https")

    class Meta:
        model = RemoteServer
        fields = (
            "slug",
            "title",
            "description",
            "url",
            "era",
            "bearer_token",
            "timeout_seconds",
            "enabled",
            "all_tenants",
            "tenants",
        )

    def clean_url(self):
        url = self.cleaned_data["url"]
        problem = url_problem(url)
        if problem:
            raise forms.ValidationError(problem.removeprefix("url: "))
        parts = urlsplit(url)
        try:
            # The same check every request makes: registering cannot point at internal hosts.
            anyio.run(partial(resolve_checked, parts.hostname, parts.port or 443, scheme=parts.scheme))
        except AddressRefused as exc:
            raise forms.ValidationError(str(exc)) from None
        return url


class RemoteToolInline(admin.TabularInline):
    model = RemoteTool
    fields = ("tool_link", "version", "status", "removed", "fetched_at", "problem")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="tool")
    def tool_link(self, obj):
        url = reverse("admin:mcp_federation_remotetool_change", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, obj.name)


@admin.register(RemoteServer)
class RemoteServerAdmin(SecretFieldsAdmin):
    form = RemoteServerForm
    change_list_template = "admin/mcp_federation/remoteserver_change_list.html"
    list_display = (
        "slug",
        "title",
        "service",
        "era",
        "enabled",
        "tools_summary",
        "last_sync_at",
        "sync_error",
    )
    list_filter = ("enabled", "era", "source")
    search_fields = ("slug", "title", "url", "registry_name")
    filter_horizontal = ("tenants",)
    readonly_fields = ("source", "registry_name", "registry_version", "last_sync_at", "last_sync_error")
    inlines = [RemoteToolInline]
    actions = ["sync_now"]
    fieldsets = (
        (None, {"fields": ("slug", "title", "description", "url", "era", "bearer_token", "timeout_seconds")}),
        ("Who may use it", {"fields": ("enabled", "all_tenants", "tenants")}),
        ("State", {"fields": readonly_fields}),
    )

    @admin.display(description="tools (approved / pending)")
    def tools_summary(self, obj):
        approved = obj.tools.filter(status=RemoteTool.Status.APPROVED, removed=False).count()
        pending = obj.tools.filter(status=RemoteTool.Status.PENDING).count()
        return f"{approved} / {pending}"

    @admin.display(description="last sync error")
    def sync_error(self, obj):
        return obj.last_sync_error[:120]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        services.registry_changed()

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        services.registry_changed()  # the tenant list

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        services.registry_changed()

    def delete_queryset(self, request, queryset):
        super().delete_queryset(request, queryset)
        services.registry_changed()

    @admin.action(description="Fetch tool definitions now", permissions=["change"])
    def sync_now(self, request, queryset):
        for server in queryset:
            try:
                report = services.sync_tools(server)
            except MCPError as exc:
                self.message_user(request, f"{server.service}: {exc.message}", messages.ERROR)
                continue
            self.message_user(
                request,
                f"{server.service}: {report.fetched} listed, {report.unchanged} unchanged, "
                f"{report.new_versions} new version(s) to approve, {report.invalid} invalid, "
                f"{report.removed} no longer listed",
                messages.WARNING if report.new_versions or report.invalid else messages.SUCCESS,
            )

    # --- marketplace ---
    def get_urls(self):
        return [
            path(
                "marketplace/",
                self.admin_site.admin_view(self.marketplace_view),
                name="mcp_federation_marketplace",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra = {"marketplace_url": reverse("admin:mcp_federation_marketplace"), **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)

    def marketplace_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            if not self.has_add_permission(request):
                raise PermissionDenied
            return self._install(request)
        query = request.GET.get("q", "").strip()[:200]
        cursor = request.GET.get("cursor", "").strip()[:500]
        entries, next_cursor, error = [], None, ""
        try:
            page = RegistryClient().search(search=query, cursor=cursor)
            next_cursor = (page.get("metadata") or {}).get("nextCursor")
            for item in page.get("servers") or []:
                server = item.get("server") or {}
                entries.append(
                    {
                        "name": server.get("name", ""),
                        "title": server.get("title") or server.get("name", ""),
                        "description": server.get("description", ""),
                        "version": server.get("version", ""),
                        "remote": services.streamable_remote(item),
                        "installed": RemoteServer.objects.filter(
                            registry_name=server.get("name", "")
                        ).first(),
                    }
                )
        except MCPError as exc:
            error = exc.message
        context = {
            **self.admin_site.each_context(request),
            "title": "MCP marketplace",
            "opts": self.model._meta,
            "query": query,
            "entries": entries,
            "next_cursor": next_cursor,
            "error": error,
            "can_install": self.has_add_permission(request),
        }
        return TemplateResponse(request, "admin/mcp_federation/marketplace.html", context)

    def _install(self, request):
        name = request.POST.get("name", "")[:200]
        version = request.POST.get("version", "latest")[:100] or "latest"
        try:
            entry = RegistryClient().version(name, version)
            server = services.install_from_registry(entry)
        except MCPError as exc:
            self.message_user(request, f"{name}: {exc.message}", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:mcp_federation_marketplace"))
        self.message_user(
            request,
            f"{name} installed as {server.service}, disabled: add its credential, fetch its tools, "
            "approve them and enable it.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:mcp_federation_remoteserver_change", args=[server.pk]))


@admin.register(RemoteTool)
class RemoteToolAdmin(admin.ModelAdmin):
    list_display = ("name", "server", "version", "status", "removed", "fetched_at", "decided_by")
    list_filter = ("status", "removed", "server")
    search_fields = ("name", "server__slug")
    readonly_fields = (
        "server",
        "name",
        "operation",
        "version",
        "status",
        "digest",
        "removed",
        "problem",
        "fetched_at",
        "decided_at",
        "decided_by",
        "diff_display",
    )
    fields = readonly_fields
    actions = ["approve", "reject"]

    def has_add_permission(self, request):
        return False

    def has_approve_permission(self, request):
        return request.user.has_perm("mcp_federation.approve_remotetool")

    @admin.display(description="change against the approved version")
    def diff_display(self, obj):
        return format_html('<pre class="fed-diff">{}</pre>', services.definition_diff(obj) or "(no change)")

    @admin.action(
        description="Approve the selected versions (after reviewing their diff)", permissions=["approve"]
    )
    def approve(self, request, queryset):
        tools = list(queryset.select_related("server"))
        if request.POST.get("confirm") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": "Approve remote tool versions",
                "opts": self.model._meta,
                "tools": [(tool, services.definition_diff(tool)) for tool in tools],
                "action": "approve",
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/mcp_federation/approve.html", context)
        for tool in tools:
            try:
                services.approve_tool(tool, request.user)
            except MCPError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(request, f"{tool.server.service}: {tool.name} v{tool.version} approved")

    @admin.action(description="Reject the selected versions", permissions=["approve"])
    def reject(self, request, queryset):
        for tool in queryset.select_related("server"):
            try:
                services.reject_tool(tool, request.user)
            except MCPError as exc:
                self.message_user(request, exc.message, messages.ERROR)
