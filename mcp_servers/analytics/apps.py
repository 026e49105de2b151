from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "mcp_servers.analytics"
    label = "mcp_analytics"
    verbose_name = "MCP server: analytics"
