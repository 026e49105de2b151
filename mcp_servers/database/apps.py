from django.apps import AppConfig


class DatabaseServerConfig(AppConfig):
    name = "mcp_servers.database"
    label = "mcp_database"
    verbose_name = "MCP server: database"
