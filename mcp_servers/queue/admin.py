"""Admin: recorded task failures (read-only)."""

from django.contrib import admin

from .models import TaskFailure


@admin.register(TaskFailure)
class TaskFailureAdmin(admin.ModelAdmin):
    list_display = ("failed_at", "task_name", "exception_type", "queue", "worker", "retried_as")
    list_filter = ("task_name", "exception_type")
    search_fields = ("task_id", "message")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
