from django.apps import AppConfig


class QueueConfig(AppConfig):
    name = "mcp_servers.queue"
    label = "mcp_queue"
    verbose_name = "MCP server: queue (Celery)"

    def ready(self) -> None:
        # Celery task signals record runs and failures (they call a service, nothing more).
        from . import signals  # noqa: F401
