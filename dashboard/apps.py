from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class AskproAdminConfig(admin_apps.AdminConfig):
    """Installs AskproAdminSite as the default admin site (replaces django.contrib.admin)."""

    default = False
    default_site = "dashboard.sites.AskproAdminSite"


class DashboardConfig(AppConfig):
    default = True
    name = "dashboard"
    verbose_name = "Dashboard"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the analyzer check
