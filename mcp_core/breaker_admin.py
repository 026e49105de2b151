"""Admin for circuit breakers: every service's current state above the list of recent
transitions, and an audited "reset" (POST, needs mcp_core.reset_breaker)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse

from .breaker import breaker_reset, breaker_states
from .models import BreakerTransition


@admin.register(BreakerTransition)
class BreakerTransitionAdmin(admin.ModelAdmin):
    list_display = ("at", "service", "from_state", "to_state", "reason")
    list_filter = ("service", "to_state")
    date_hierarchy = "at"
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        return [
            path(
                "reset/<str:service>/",
                self.admin_site.admin_view(self.reset_view),
                name="mcp_core_breakertransition_reset",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "breaker_states": breaker_states(),
            "can_reset_breakers": request.user.has_perm("mcp_core.reset_breaker"),
        }
        return super().changelist_view(request, extra_context=extra_context)

    def reset_view(self, request, service: str):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm("mcp_core.reset_breaker"):
            raise PermissionDenied
        try:
            previous = breaker_reset(service, user=request.user)
        except ValueError as exc:
            messages.error(request, str(exc))
        except Exception as exc:  # noqa: BLE001 - e.g. Redis down: tell the operator, do not 500
            messages.error(request, f"Could not reset the {service} breaker ({type(exc).__name__}).")
        else:
            messages.success(request, f"The {service} breaker was {previous}; it is closed now.")
        return HttpResponseRedirect(reverse("admin:mcp_core_breakertransition_changelist"))
