"""Servers whose health checks behave in known ways, for the health command and endpoint tests."""

from __future__ import annotations

import os
import time

from django.conf import settings

from mcp_core.contracts import SYSTEM_PRINCIPAL, MCPError, MCPRequest, OperationContext
from mcp_core.health import HealthResult, HealthStatus
from mcp_core.http import UpstreamClient
from mcp_core.sandbox import SandboxRequest, SandboxResponse, SandboxServer, route
from mcp_core.schemas import NoParams, Result
from mcp_core.server import MCPServer, operation


class Fine(MCPServer):
    name = "fine"
    description = "Always healthy."

    def health(self) -> HealthResult:
        return HealthResult(HealthStatus.HEALTHY, "ok")


class Slowish(MCPServer):
    name = "slowish"
    description = "Works, but slowly."

    def health(self) -> HealthResult:
        return HealthResult(HealthStatus.DEGRADED, "p99 above 2s")


class Broken(MCPServer):
    name = "broken"
    description = "Its upstream refuses connections."

    def health(self) -> HealthResult:
        raise ConnectionRefusedError("upstream down")


class Hung(MCPServer):
    name = "hung"
    description = "Its upstream never answers."

    def health(self) -> HealthResult:
        time.sleep(120)
        return HealthResult(HealthStatus.HEALTHY)


class Unconfigured(MCPServer):
    name = "unconfigured"
    description = "No credentials."

    def is_configured(self) -> bool:
        return False

    def health(self) -> HealthResult:
        raise AssertionError("never called without credentials")


def paths(*names: str) -> list[str]:
    return [f"tests.mcp.health_servers.{name}" for name in names]


# --- a server with a real upstream: a local sandbox that counts every request ---


class PingSandbox(SandboxServer):
    """The upstream of `Pinged`: GET /health for its health check, GET /items for its operation.
    Its request_log counts what reached it; a delay fault makes it hang."""

    service = "pinged"

    @route("GET", r"/health")
    def health(self, request: SandboxRequest) -> SandboxResponse:
        return SandboxResponse(200, {"ok": True})

    @route("GET", r"/items")
    def items(self, request: SandboxRequest) -> SandboxResponse:
        return SandboxResponse(200, {"items": []})


class PingClient(UpstreamClient):
    service = "pinged"
    max_retries = 0


def _upstream_url() -> str:
    return getattr(settings, "PINGED_UPSTREAM_URL", None) or os.environ["PINGED_UPSTREAM_URL"]


def _context(seconds: float) -> OperationContext:
    request = MCPRequest(service="pinged", operation="health", params={}, principal=SYSTEM_PRINCIPAL)
    return OperationContext(
        request=request, principal=SYSTEM_PRINCIPAL, tenant=None, deadline=time.monotonic() + seconds
    )


class ItemsResult(Result):
    items: list


class Pinged(MCPServer):
    name = "pinged"
    description = "Checks its upstream over HTTP (PINGED_UPSTREAM_URL)."

    @operation(
        description="List items upstream",
        params=NoParams,
        result=ItemsResult,
        scope="read",
        read_only=True,
        open_world=True,
        tenant_scoped=False,
        timeout=3,
    )
    def list_items(self, ctx: OperationContext, params: NoParams) -> ItemsResult:
        return ItemsResult(
            items=PingClient(base_url=_upstream_url()).request("GET", "/items", ctx=ctx).json()["items"]
        )

    def health(self) -> HealthResult:
        try:
            PingClient(base_url=_upstream_url()).request("GET", "/health", ctx=_context(3.0))
        except MCPError as exc:
            return HealthResult(HealthStatus.UNHEALTHY, exc.message)
        return HealthResult(HealthStatus.HEALTHY, "upstream answered")
