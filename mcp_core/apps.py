from django.apps import AppConfig


class McpCoreConfig(AppConfig):
    name = "mcp_core"
    verbose_name = "MCP orchestrator"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the system checks
