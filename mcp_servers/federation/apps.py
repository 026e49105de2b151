from django.apps import AppConfig


class FederationConfig(AppConfig):
    name = "mcp_servers.federation"
    label = "mcp_federation"
    verbose_name = "MCP: federation"
    default_auto_field = "django.db.models.BigAutoField"
