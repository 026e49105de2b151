from django.apps import AppConfig


class OAuthConfig(AppConfig):
    name = "mcp_core.oauth"
    label = "mcp_oauth"
    verbose_name = "OAuth for MCP clients"
