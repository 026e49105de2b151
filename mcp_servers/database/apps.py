from django.apps import AppConfig
from django.db.backends.signals import connection_created


class DatabaseServerConfig(AppConfig):
    name = "mcp_servers.database"
    label = "mcp_database"
    verbose_name = "MCP server: database"

    def ready(self) -> None:
        from .querylog import install

        # Capture slow statements on every connection (see querylog: our fallback for
        # pg_stat_statements, which needs a server setting we do not control).
        connection_created.connect(install, dispatch_uid="mcp_database_slow_query_capture")
