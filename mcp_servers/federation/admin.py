"""The admin of federated remote MCP servers: registrations (credentials write-only), pinned
tool versions approved with their diff shown, and the marketplace (an MCP Registry).

Registrations are platform rows: one serves every tenant in its list. Someone bound to some
tenants (mcp_core.operators) may at most view them (mcp_core.admin_scoping.PlatformRowsAdmin):
no add, change, delete, sync, approve, reject or install, whatever their model permissions; a
registration's tenant list shows them only their own tenants."""

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
from mcp_core.admin_scoping import PlatformRowsAdmin, allowed_tenants
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


def _own_tenants_line(names: list[str], all_tenants: bool) -> str:
    if names:
        return ", ".join(names)
    return "none of yours listed" + (" (it is open to every tenant)" if all_tenants else "")


@admin.register(RemoteServer)
class RemoteServerAdmin(PlatformRowsAdmin, SecretFieldsAdmin):
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

    # --- someone bound to some tenants: their tenants only, read-only --------------------------
    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            # What own_tenants may show: the display method is not given the request.
            obj._visible_tenant_ids = allowed_tenants(request)
        return obj

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if allowed_tenants(request) is None:
            return fieldsets
        # The full list names other tenants (and which servers they use): not for them.
        return [
            (title, {**options, "fields": [_swap_tenants(line) for line in options["fields"]]})
            for title, options in fieldsets
        ]

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if allowed_tenants(request) is not None:
            readonly.append("own_tenants")
        return readonly

    def lookup_allowed(self, lookup, value, request=None):
        # ?tenants=<pk> would tell them which servers another tenant may use.
        if lookup.split("__")[0] == "tenants" and (request is None or allowed_tenants(request) is not None):
            return False
        return super().lookup_allowed(lookup, value, request)

    @admin.display(description="tenants (yours only)")
    def own_tenants(self, obj):
        allowed = getattr(obj, "_visible_tenant_ids", frozenset())
        if allowed is None:
            names = [t.name for t in obj.tenants.order_by("name")]
        else:
            names = list(obj.tenants.filter(pk__in=allowed).order_by("name").values_list("name", flat=True))
        return _own_tenants_line(names, obj.all_tenants)

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
            # Installing adds a platform registration: has_add_permission is False for anyone
            # bound to some tenants (PlatformRowsAdmin).
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


def _swap_tenants(line):
    if isinstance(line, (list, tuple)):
        return tuple(_swap_tenants(name) for name in line)
    return "own_tenants" if line == "tenants" else line


@admin.register(RemoteTool)
class RemoteToolAdmin(PlatformRowsAdmin, admin.ModelAdmin):
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
        # Approving pins a version for every tenant: not for someone bound to some.
        return self.may_change_platform(request) and request.user.has_perm(
            "mcp_federation.approve_remotetool"
        )

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
