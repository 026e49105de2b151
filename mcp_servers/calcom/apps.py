from django.apps import AppConfig


class CalcomServerConfig(AppConfig):
    name = "mcp_servers.calcom"
    label = "mcp_calcom"
    verbose_name = "MCP server: Cal.com"
    default_auto_field = "django.db.models.BigAutoField"
