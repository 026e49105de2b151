from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "mcp_servers.webhooks"
    label = "mcp_webhooks"
    verbose_name = "MCP server: webhooks"
