from django.apps import AppConfig


class UIAuditServerConfig(AppConfig):
    name = "mcp_servers.ui_audit"
    label = "mcp_ui_audit"
    verbose_name = "MCP server: UI/UX audit"
