from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """Appointment confirmations and reminders (docs/reminders.md)."""

    name = "notifications"
    verbose_name = "Appointment notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import receivers  # noqa: F401 - connects to mcp_core.signals
