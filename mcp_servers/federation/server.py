"""The federation server: remote MCP servers registered by operators (docs/servers/federation.md).

Its own operations describe and refresh the registrations; each enabled remote server with
approved tools joins the registry as the service `fed_<slug>` (dynamic_servers)."""

from __future__ import annotations

from urllib.parse import urlsplit

from mcp_core.contracts import ErrorCode, MCPError, OperationContext
from mcp_core.health import HealthResult, HealthStatus
from mcp_core.registry import ensure_registry_version
from mcp_core.schemas import NoParams
from mcp_core.server import MCPServer, operation

from . import services
from .models import RemoteServer, RemoteTool
from .remote import remote_services
from .schemas import (
    ServerList,
    ServerParams,
    ServerSummary,
    SyncResult,
    ToolList,
    ToolSummary,
)


def _server(slug: str) -> RemoteServer:
    found = RemoteServer.objects.filter(slug=slug).first()
    if found is None:
        raise MCPError(ErrorCode.NOT_FOUND, f"server: no remote server {slug!r}", details={"field": "server"})
    return found


class FederationServer(MCPServer):
    """Remote MCP servers as governed services, and their registrations."""

    name = "federation"
    description = "Remote MCP servers joined to this control plane: registrations, pinned tools, refresh"

    def dynamic_servers(self) -> list[MCPServer]:
        return list(remote_services())

    def health(self) -> HealthResult:
        count = RemoteServer.objects.filter(enabled=True).count()
        if count:
            ensure_registry_version()  # run periodically: brings the services back after a cache flush
        pending = RemoteTool.objects.filter(status=RemoteTool.Status.PENDING, server__enabled=True).count()
        detail = f"{count} enabled remote server(s)"
        if pending:
            return HealthResult(
                HealthStatus.DEGRADED, f"{detail}; {pending} tool version(s) awaiting approval"
            )
        return HealthResult(HealthStatus.HEALTHY, detail)

    @operation(
        description="List the registered remote MCP servers with their state and tool counts.",
        params=NoParams,
        result=ServerList,
        scope="read",
        read_only=True,
        tenant_scoped=False,
        platform_only=True,
    )
    def list_servers(self, ctx: OperationContext, params: NoParams) -> ServerList:
        rows = []
        for server in RemoteServer.objects.all():
            tools = server.tools.filter(removed=False)
            rows.append(
                ServerSummary(
                    slug=server.slug,
                    service=server.service,
                    title=server.title,
                    url_host=urlsplit(server.url).hostname or "",
                    era=server.era,
                    enabled=server.enabled,
                    all_tenants=server.all_tenants,
                    approved_tools=tools.filter(status=RemoteTool.Status.APPROVED).count(),
                    pending_tools=tools.filter(status=RemoteTool.Status.PENDING).count(),
                    last_sync_at=server.last_sync_at.isoformat() if server.last_sync_at else None,
                    last_sync_error=server.last_sync_error,
                )
            )
        return ServerList(servers=rows)

    @operation(
        description=(
            "List a remote server's tool versions: approved (pinned), pending approval, rejected or "
            "invalid, and whether the remote still lists them."
        ),
        params=ServerParams,
        result=ToolList,
        scope="read",
        read_only=True,
        tenant_scoped=False,
        platform_only=True,
    )
    def list_tools(self, ctx: OperationContext, params: ServerParams) -> ToolList:
        server = _server(params.server)
        return ToolList(
            server=server.slug,
            tools=[
                ToolSummary(
                    name=t.name,
                    operation=t.operation,
                    tool_name=f"{server.service}_{t.operation}",
                    version=t.version,
                    status=t.status,
                    digest=t.digest,
                    removed=t.removed,
                    problem=t.problem,
                )
                for t in server.tools.all()
            ],
        )

    @operation(
        description=(
            "Fetch a remote server's tool list now and pin it: changed definitions become pending "
            "versions that an operator approves in the admin; the approved ones stay in use."
        ),
        params=ServerParams,
        result=SyncResult,
        scope="admin",
        idempotent=True,
        open_world=True,
        tenant_scoped=False,
        platform_only=True,
        timeout=30.0,
    )
    def sync_server(self, ctx: OperationContext, params: ServerParams) -> SyncResult:
        server = _server(params.server)
        report = services.sync_tools(server, timeout=ctx.remaining())
        return SyncResult(server=server.slug, **report.__dict__)
