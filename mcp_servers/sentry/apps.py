from django.apps import AppConfig


class SentryServerConfig(AppConfig):
    name = "mcp_servers.sentry"
    label = "mcp_sentry"
    verbose_name = "MCP server: Sentry"
