from django.apps import AppConfig


class MailConfig(AppConfig):
    # The package is "mail" so that it never shadows the standard library's `email`; the
    # service (tools email_*) and the app label keep the name people look for.
    name = "mcp_servers.mail"
    label = "mcp_email"
    verbose_name = "MCP: Email"
    default_auto_field = "django.db.models.BigAutoField"
