from django.contrib import admin

from mcp_core.admin_scoping import PlatformOnlyAdmin, TenantScopedAdmin

from .models import HealthCheckResult, ImprovementRun, Recommendation
from .selectors import visible_recommendations


@admin.register(Recommendation)
class RecommendationAdmin(TenantScopedAdmin, admin.ModelAdmin):
    """Someone bound to some tenants sees the recommendations about their tenants only, as on
    the improvements page; platform findings (no tenant) are not theirs."""

    tenant_field = "tenants"
    list_display = ("title", "analyzer", "severity", "status", "times_seen", "last_seen_at")
    list_filter = ("status", "severity", "analyzer")
    search_fields = ("title", "fingerprint")
    readonly_fields = ("first_seen_at", "last_seen_at", "times_seen", "evidence")
    filter_horizontal = ("tenants",)

    def scope_queryset(self, request, queryset, tenant_ids):
        return queryset.filter(pk__in=visible_recommendations(tenant_ids).values("pk"))


@admin.register(ImprovementRun)
class ImprovementRunAdmin(PlatformOnlyAdmin, admin.ModelAdmin):
    """The engine's runs: platform rows, and a run's stored error may quote any tenant's data."""

    list_display = ("started_at", "trigger", "duration_ms", "findings", "created", "updated")
    list_filter = ("trigger",)

    def has_add_permission(self, request):
        return False


@admin.register(HealthCheckResult)
class HealthCheckResultAdmin(PlatformOnlyAdmin, admin.ModelAdmin):
    """Health check results: platform rows whose detail may name any tenant's upstream."""

    list_display = ("service", "status", "latency_ms", "checked_at", "detail")

    def has_add_permission(self, request):
        return False
