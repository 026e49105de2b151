from django import forms
from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.utils import timezone
from django.utils.functional import cached_property

from .admin_scoping import TenantScopedAdmin
from .api_keys import ScopeError, api_key_create, validate_scopes
from .contracts import Principal
from .models import ApiKey, AuditEntry, MetricRollup, OperatorAccess
from .operators import OperatorRights, rights_for
from .registry import get_registry


def _holds(principal: Principal, scope: str) -> bool:
    return "*" in principal.scopes if scope == "*" else principal.has_scope(scope)


class ScopesForm(forms.ModelForm):
    """A model form with a `scopes` list edited as space-separated text and validated.

    Nobody but a superuser hands out more than they hold: every scope of an API key or a grant
    must be one the person saving it holds on each tenant it covers (see mcp_core.operators).
    """

    scopes_text = forms.CharField(
        label="Scopes",
        help_text='Space-separated, e.g. "database:read stripe:*". "*" grants everything.',
    )
    # The rights of the person saving the form; set by the ModelAdmin (GrantingAdmin).
    rights: OperatorRights | None = None

    def check_within_rights(self, tenants: list) -> None:
        scopes = self.cleaned_data.get("scopes_text")
        if not scopes or self.rights is None or self.rights.is_superuser:
            return
        for tenant in tenants or [None]:
            principal = self.rights.principal(tenant)
            missing = [scope for scope in scopes if not _holds(principal, scope)]
            if missing:
                where = f"tenant {tenant.slug}" if tenant is not None else "every tenant"
                self.add_error(
                    "scopes_text",
                    f"You may only hand out scopes you hold yourself: you do not hold "
                    f"{' '.join(missing)} on {where}.",
                )
                return

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["scopes_text"].initial = " ".join(self.instance.scopes)

    def clean_scopes_text(self):
        try:
            return validate_scopes(
                self.cleaned_data["scopes_text"].split(), known_services=set(get_registry().servers)
            )
        except ScopeError as exc:
            raise forms.ValidationError(str(exc)) from None


class ApiKeyForm(ScopesForm):
    class Meta:
        model = ApiKey
        fields = ("name", "tenant", "expires_at")

    def clean(self):
        cleaned = super().clean()
        self.check_within_rights([cleaned.get("tenant")])
        return cleaned


class GrantingAdmin(admin.ModelAdmin):
    """An admin whose form hands out scopes: it learns who is saving it."""

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.rights = rights_for(request)
        return form


@admin.register(ApiKey)
class ApiKeyAdmin(TenantScopedAdmin, GrantingAdmin):
    form = ApiKeyForm
    list_display = (
        "name",
        "prefix",
        "tenant",
        "scope_list",
        "created_at",
        "last_used_at",
        "expires_at",
        "is_active",
    )
    list_filter = ("tenant",)
    search_fields = ("name", "prefix")
    list_select_related = ("tenant",)
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked_at")
    actions = ("revoke",)

    @admin.display(description="Scopes")
    def scope_list(self, obj: ApiKey) -> str:
        return " ".join(obj.scopes)

    @admin.display(boolean=True, description="Active")
    def is_active(self, obj: ApiKey) -> bool:
        return obj.is_usable()

    def save_model(self, request, obj, form, change):
        scopes = form.cleaned_data["scopes_text"]
        if change:
            obj.scopes = scopes
            super().save_model(request, obj, form, change)
            return
        key, raw = api_key_create(name=obj.name, scopes=scopes, tenant=obj.tenant, expires_at=obj.expires_at)
        obj.pk = key.pk
        obj.prefix = key.prefix
        # The only time the secret is ever shown.
        messages.warning(request, f"Copy this key now; it will not be shown again: {raw}")

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} key(s).")


class OperatorAccessForm(ScopesForm):
    class Meta:
        model = OperatorAccess
        fields = ("name", "user", "group", "tenants")

    def clean(self):
        cleaned = super().clean()
        self.check_within_rights(list(cleaned.get("tenants") or []))
        return cleaned

    def save(self, commit=True):
        self.instance.scopes = self.cleaned_data["scopes_text"]
        return super().save(commit)


@admin.register(OperatorAccess)
class OperatorAccessAdmin(TenantScopedAdmin, GrantingAdmin):
    """Who may call which operations from the admin (console, admin actions); see docs/admin-rights.md.

    Someone bound to some tenants sees the grants that list only tenants of theirs: a grant on
    every tenant, or one that also lists another tenant, is not theirs to see or edit.
    """

    tenant_field = "tenants"

    form = OperatorAccessForm
    list_display = ("name", "user", "group", "scope_list", "tenant_list", "updated_at")
    list_filter = ("group",)
    search_fields = ("name", "user__username", "group__name")
    list_select_related = ("user", "group")
    filter_horizontal = ("tenants",)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("tenants")

    def scope_queryset(self, request, queryset, tenant_ids):
        listed = OperatorAccess.tenants.through.objects
        return queryset.filter(pk__in=listed.values("operatoraccess_id")).exclude(
            pk__in=listed.exclude(company_id__in=tenant_ids).values("operatoraccess_id")
        )

    @admin.display(description="Scopes")
    def scope_list(self, obj: OperatorAccess) -> str:
        return " ".join(obj.scopes)

    @admin.display(description="Tenants")
    def tenant_list(self, obj: OperatorAccess) -> str:
        return ", ".join(t.slug for t in obj.tenants.all()) or "every tenant"


class CappedPaginator(Paginator):
    """The audit log is large: never COUNT(*) it for the change list."""

    @cached_property
    def count(self) -> int:
        return 10_000


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(TenantScopedAdmin, ReadOnlyAdmin):
    list_display = (
        "created_at",
        "service",
        "operation",
        "outcome",
        "error_code",
        "principal",
        "tenant",
        "transport",
        "duration_ms",
    )
    list_filter = ("outcome", "service", "transport", "error_code")
    # =trace_id: an exact match, so that the partial index serves a trace id pasted from the
    # tracing backend.
    search_fields = ("request_id", "principal", "operation", "=trace_id")
    list_select_related = ("tenant",)
    date_hierarchy = "created_at"
    paginator = CappedPaginator
    show_full_result_count = False


@admin.register(MetricRollup)
class MetricRollupAdmin(TenantScopedAdmin, ReadOnlyAdmin):
    tenant_field = "tenant_id"  # a plain column (0: no tenant), not a ForeignKey

    list_display = (
        "minute",
        "service",
        "operation",
        "tenant_id",
        "calls",
        "service_failures",
        "caller_errors",
        "not_configured",
        "max_ms",
    )
    list_filter = ("service",)
    date_hierarchy = "minute"
    show_full_result_count = False


from .breaker_admin import BreakerTransitionAdmin  # noqa: E402, F401 - registers the breaker admin
