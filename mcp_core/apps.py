from django.apps import AppConfig


class McpCoreConfig(AppConfig):
    name = "mcp_core"
    verbose_name = "MCP orchestrator"

    def ready(self) -> None:
        from . import (
            breaker,  # noqa: F401 - registers the MCP_BREAKERS check
            checks,  # noqa: F401 - registers the system checks
        )
