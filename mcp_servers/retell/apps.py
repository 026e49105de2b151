from django.apps import AppConfig


class RetellServerConfig(AppConfig):
    name = "mcp_servers.retell"
    label = "mcp_retell"
    verbose_name = "MCP server: Retell"
