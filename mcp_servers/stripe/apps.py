from django.apps import AppConfig


class StripeConfig(AppConfig):
    name = "mcp_servers.stripe"
    label = "mcp_stripe"
    verbose_name = "MCP: Stripe"
    default_auto_field = "django.db.models.BigAutoField"
