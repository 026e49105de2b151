from django.apps import AppConfig


class RetellServerConfig(AppConfig):
    name = "mcp_servers.retell"
    label = "mcp_retell"
    verbose_name = "MCP server: Retell"

    def ready(self) -> None:
        # Cache invalidation for the inbound-call answer (signals call a service, nothing more).
        from . import signals  # noqa: F401
