from django.contrib import admin

from .models import HealthCheckResult, ImprovementRun, Recommendation


@admin.register(Recommendation)
class RecommendationAdmin(admin.ModelAdmin):
    list_display = ("title", "analyzer", "severity", "status", "times_seen", "last_seen_at")
    list_filter = ("status", "severity", "analyzer")
    search_fields = ("title", "fingerprint")
    readonly_fields = ("first_seen_at", "last_seen_at", "times_seen", "evidence")


@admin.register(ImprovementRun)
class ImprovementRunAdmin(admin.ModelAdmin):
    list_display = ("started_at", "trigger", "duration_ms", "findings", "created", "updated")
    list_filter = ("trigger",)

    def has_add_permission(self, request):
        return False


@admin.register(HealthCheckResult)
class HealthCheckResultAdmin(admin.ModelAdmin):
    list_display = ("service", "status", "latency_ms", "checked_at", "detail")

    def has_add_permission(self, request):
        return False
