from django.contrib import admin

from mcp_core.admin_scoping import TenantScopedAdmin

from .admin_secrets import SecretFieldsAdmin
from .models import (
    Appointment,
    Branch,
    Call,
    Company,
    Customer,
    Invoice,
    PhoneNumber,
    Plan,
    Service,
    Staff,
    WorkingHours,
)


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ("name", "code", "requests_per_minute", "max_concurrent_calls")
    search_fields = ("name", "code")


@admin.register(Company)
class CompanyAdmin(TenantScopedAdmin, SecretFieldsAdmin):
    list_display = (
        "name",
        "slug",
        "plan",
        "billing_status",
        "is_active",
        "has_calcom_key",
        "has_retell_key",
    )
    list_filter = ("is_active", "billing_status", "plan")
    search_fields = ("name", "slug")
    list_select_related = ("plan",)
    prepopulated_fields = {"slug": ("name",)}
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "name",
                    "slug",
                    "timezone",
                    "currency",
                    "plan",
                    "is_active",
                    "billing_status",
                )
            },
        ),
        (
            "Integrations",
            {
                "fields": (
                    "calcom_api_key",
                    "calcom_webhook_secret",
                    "retell_api_key",
                    "retell_agent_id",
                    "stripe_secret_key",
                    "stripe_webhook_secret",
                    "stripe_customer_id",
                    "stripe_subscription_id",
                ),
                "description": "Secrets are stored encrypted and never shown: each line says whether it is "
                "set, when it last changed and a short fingerprint to tell values apart.",
            },
        ),
    )

    @admin.display(boolean=True, description="Cal.com key")
    def has_calcom_key(self, obj: Company) -> bool:
        return bool(obj.calcom_api_key)

    @admin.display(boolean=True, description="Retell key")
    def has_retell_key(self, obj: Company) -> bool:
        return bool(obj.retell_api_key)


@admin.register(Branch)
class BranchAdmin(TenantScopedAdmin, admin.ModelAdmin):
    list_display = ("name", "company", "city", "phone_number", "is_active")
    list_filter = ("is_active", "company")
    search_fields = ("name", "city", "phone_number")
    list_select_related = ("company",)


class WorkingHoursInline(admin.TabularInline):
    """A staff member's working week (analytics: utilisation is booked minutes against it)."""

    model = WorkingHours
    fields = ("weekday", "starts", "ends")
    extra = 0


@admin.register(Staff)
class StaffAdmin(TenantScopedAdmin, admin.ModelAdmin):
    inlines = [WorkingHoursInline]

    def save_formset(self, request, form, formset, change):
        # Working hours carry their staff member's company (every tenant record does).
        for row in formset.save(commit=False):
            row.company_id = form.instance.company_id
            row.save()
        for row in formset.deleted_objects:
            row.delete()
        formset.save_m2m()

    list_display = ("name", "company", "branch", "email", "is_active", "is_bookable")
    list_filter = ("is_active", "is_bookable", "company")
    search_fields = ("name", "email", "phone")
    list_select_related = ("company", "branch")


@admin.register(Service)
class ServiceAdmin(TenantScopedAdmin, admin.ModelAdmin):
    list_display = ("name", "company", "branch", "duration_minutes", "price", "is_active")
    list_filter = ("is_active", "company")
    search_fields = ("name",)
    list_select_related = ("company", "branch")


@admin.register(Customer)
class CustomerAdmin(TenantScopedAdmin, admin.ModelAdmin):
    list_display = ("name", "company", "phone", "email", "created_at")
    list_filter = ("company",)
    search_fields = ("name", "phone", "email")
    list_select_related = ("company",)
    show_full_result_count = False


@admin.register(Call)
class CallAdmin(TenantScopedAdmin, admin.ModelAdmin):
    list_display = (
        "started_at",
        "company",
        "branch",
        "from_number",
        "to_number",
        "status",
        "duration_sec",
        "call_successful",
    )
    list_filter = ("status", "direction", "call_successful", "company")
    search_fields = ("retell_call_id", "from_number", "to_number", "summary")
    list_select_related = ("company", "branch")
    raw_id_fields = ("customer", "branch")
    date_hierarchy = "started_at"
    show_full_result_count = False


@admin.register(Appointment)
class AppointmentAdmin(TenantScopedAdmin, admin.ModelAdmin):
    list_display = ("starts_at", "company", "branch", "customer", "service", "status")
    list_filter = ("status", "company")
    search_fields = ("customer__name", "customer__phone", "calcom_booking_uid", "notes")
    list_select_related = ("company", "branch", "customer", "service")
    raw_id_fields = ("customer", "call", "staff", "service", "branch")
    date_hierarchy = "starts_at"
    show_full_result_count = False


@admin.register(PhoneNumber)
class PhoneNumberAdmin(TenantScopedAdmin, admin.ModelAdmin):
    list_display = ("number", "company", "branch", "type", "is_active", "is_primary")
    list_filter = ("type", "is_active", "company")
    search_fields = ("number",)
    list_select_related = ("company", "branch")


@admin.register(Invoice)
class InvoiceAdmin(TenantScopedAdmin, admin.ModelAdmin):
    list_display = ("__str__", "company", "status", "total", "currency", "due_date", "created_at")
    list_filter = ("status", "company")
    search_fields = ("number", "stripe_invoice_id")
    list_select_related = ("company",)
    raw_id_fields = ("customer", "appointment")
