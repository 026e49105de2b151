from django.apps import AppConfig


class GoogleCalendarConfig(AppConfig):
    name = "mcp_servers.gcal"
    label = "mcp_gcal"
    verbose_name = "MCP: Google Calendar"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Appointment signals (two-way sync) and the busy-time source Cal.com's availability
        # and the inbound-call context consult (mcp_core.busy_time).
        from . import busy, signals  # noqa: F401
