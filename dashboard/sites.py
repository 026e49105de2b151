"""The admin site of the control plane. Dashboard pages are added here as admin views."""

from functools import partial

from django.contrib import admin
from django.urls import path


class AskproAdminSite(admin.AdminSite):
    """The operators' admin: every model, plus the MCP dashboard pages."""

    site_header = "AskPro control plane"
    site_title = "AskPro admin"
    index_title = "Operations"
    index_template = "admin/dashboard/index.html"

    def get_urls(self):
        from . import views

        def page(view, **kwargs):
            return self.admin_view(partial(view, self), **kwargs)

        return [
            path("dashboard/", page(views.dashboard_view), name="dashboard"),
            path("dashboard/live.html", page(views.dashboard_live_view), name="dashboard_live"),
            path("monitoring/", page(views.monitoring_view), name="monitoring"),
            path("monitoring/data.json", page(views.monitoring_data_view), name="monitoring_data"),
            path("improvements/", page(views.improvements_view), name="improvements"),
            path(
                "improvements/<int:pk>/<slug:action>/",
                page(views.improvement_action_view),
                name="improvement_action",
            ),
            path("console/", page(views.console_view), name="console"),
            path("analytics/", page(views.analytics_view), name="analytics"),
            path("analytics/export.csv", page(views.analytics_export_view), name="analytics_export"),
            *super().get_urls(),
        ]
