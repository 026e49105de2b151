"""The admin site of the control plane. Dashboard pages are added here as admin views."""

from django.contrib import admin


class AskproAdminSite(admin.AdminSite):
    """The operators' admin: every model, plus the MCP dashboard pages."""

    site_header = "AskPro control plane"
    site_title = "AskPro admin"
    index_title = "Operations"
