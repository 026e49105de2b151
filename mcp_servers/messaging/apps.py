from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "mcp_servers.messaging"
    label = "mcp_messaging"
    verbose_name = "MCP: Messaging (SMS, WhatsApp)"
    default_auto_field = "django.db.models.BigAutoField"
