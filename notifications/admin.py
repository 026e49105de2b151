"""Admin: each tenant's notification settings, every outbound message the workflow asked for
(status and cost, read-only), the reminders, and the reminder plan on each appointment.

The opt-out list is the messaging server's (Opt-outs), the suppression list the email server's;
both are in their own sections of the admin.
"""

from django.contrib import admin
from django.db import transaction

from askpro.admin import AppointmentAdmin as BaseAppointmentAdmin
from askpro.models import Appointment
from mcp_core import signals
from mcp_core.admin_scoping import TenantScopedAdmin

from .models import Notification, NotificationSettings, Reminder, format_offset


@admin.register(NotificationSettings)
class NotificationSettingsAdmin(TenantScopedAdmin, admin.ModelAdmin):
    list_display = (
        "company",
        "reminders_enabled",
        "reminder_offsets",
        "channel_order",
        "confirmations_enabled",
    )
    list_filter = ("reminders_enabled", "confirmations_enabled")
    search_fields = ("company__name", "company__slug")
    list_select_related = ("company",)
    autocomplete_fields = ("company",)


class _ReadOnly:
    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Notification)
class NotificationAdmin(TenantScopedAdmin, _ReadOnly, admin.ModelAdmin):
    list_display = ("created_at", "company", "kind", "channel", "recipient", "status", "price", "price_unit",
                    "error_code", "appointment")  # fmt: skip
    list_filter = ("status", "channel", "kind", "company")
    search_fields = ("recipient", "idempotency_key")
    list_select_related = ("company", "appointment")
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(Reminder)
class ReminderAdmin(TenantScopedAdmin, _ReadOnly, admin.ModelAdmin):
    list_display = ("due_at", "company", "appointment", "offset", "generation", "status", "attempts",
                    "channel", "sent_at")  # fmt: skip
    list_filter = ("status", "company")
    list_select_related = ("company", "appointment")
    date_hierarchy = "due_at"
    show_full_result_count = False

    @admin.display(description="before", ordering="offset_minutes")
    def offset(self, obj: Reminder) -> str:
        return format_offset(obj.offset_minutes)


class ReminderInline(_ReadOnly, admin.TabularInline):
    """The appointment's reminder plan, every generation (a reschedule cancels the older one)."""

    model = Reminder
    extra = 0
    fields = ("offset_minutes", "generation", "due_at", "status", "attempts", "channel", "sent_at", "note")
    ordering = ("-generation", "-offset_minutes")
    verbose_name_plural = "reminder plan"


class NotificationInline(_ReadOnly, admin.TabularInline):
    model = Notification
    fk_name = "appointment"
    extra = 0
    fields = ("created_at", "kind", "channel", "recipient", "status", "price", "price_unit", "error_code")
    ordering = ("-created_at",)
    verbose_name_plural = "messages sent"


admin.site.unregister(Appointment)


@admin.register(Appointment)
class AppointmentAdmin(BaseAppointmentAdmin):
    """The appointment with its reminder plan and messages; a change made here is announced like
    one from Cal.com (booked, moved or cancelled), so the customer is told and reminders follow."""

    inlines = [ReminderInline, NotificationInline]

    def save_model(self, request, obj, form, change):
        before = None
        if change and obj.pk:
            before = Appointment.objects.filter(pk=obj.pk).values("starts_at", "status").first()
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            what = _change_of(before, obj)
            if what:
                signals.appointment(obj.pk, obj.company_id, what, "admin")


def _change_of(before: dict | None, after: Appointment) -> str | None:
    active = (Appointment.Status.SCHEDULED, Appointment.Status.CONFIRMED)
    if before is None:
        return "booked" if after.status in active else None
    if after.status == Appointment.Status.CANCELLED and before["status"] != Appointment.Status.CANCELLED:
        return "cancelled"
    if after.status in active and before["starts_at"] != after.starts_at:
        return "rescheduled"
    if after.status in active and before["status"] not in active:
        return "booked"
    return None
