from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


def _close_sessions(sender, instance, **kwargs) -> None:
    # A deleted or disabled registration's kept sessions close in this process at once (in the
    # others when idle); a changed URL, credential or era opens a new session on the next call.
    if kwargs.get("signal") is post_delete or not instance.enabled:
        from .pool import session_pool

        session_pool().discard(instance.pk)


class FederationConfig(AppConfig):
    name = "mcp_servers.federation"
    label = "mcp_federation"
    verbose_name = "MCP: federation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_save.connect(
            _close_sessions, sender="mcp_federation.RemoteServer", dispatch_uid="fed-sessions-save"
        )
        post_delete.connect(
            _close_sessions, sender="mcp_federation.RemoteServer", dispatch_uid="fed-sessions-delete"
        )
