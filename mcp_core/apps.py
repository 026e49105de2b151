from django.apps import AppConfig


class McpCoreConfig(AppConfig):
    name = "mcp_core"
    verbose_name = "MCP orchestrator"

    def ready(self) -> None:
        from django.core.signals import request_finished, request_started

        from . import (
            breaker,  # noqa: F401 - registers the MCP_BREAKERS check
            checks,  # noqa: F401 - registers the system checks
        )
        from .logs import bind_request, unbind_request
        from .tracing import configure_from_settings

        request_started.connect(bind_request, dispatch_uid="askpro-log-context")
        request_finished.connect(unbind_request, dispatch_uid="askpro-log-context")
        # Before the WSGI handler loads the middleware: the Django instrumentation adds its own.
        configure_from_settings()
