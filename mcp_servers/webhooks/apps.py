from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "mcp_servers.webhooks"
    label = "mcp_webhooks"
    verbose_name = "MCP server: webhooks"

    def ready(self) -> None:
        # Cache invalidation for the inbound-call context (signals call a service, nothing more).
        from . import signals  # noqa: F401
