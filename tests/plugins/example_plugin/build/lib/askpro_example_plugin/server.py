"""A tiny server: one read operation, declared exactly like a built-in server's."""

from __future__ import annotations

from typing import Annotated

import msgspec

from mcp_core.contracts import OperationContext
from mcp_core.health import HealthResult, HealthStatus
from mcp_core.schemas import Params, Result
from mcp_core.server import MCPServer, operation


class GreetParams(Params):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=50, description="Who to greet")]


class Greeting(Result):
    text: str
    tenant: str


class ExampleServer(MCPServer):
    """Greets; exists to show (and test) that plugins are first-class servers."""

    name = "example"
    description = "An example plugin server."

    @operation(
        description="Greet someone by name, on behalf of the tenant.",
        params=GreetParams,
        result=Greeting,
        scope="read",
        read_only=True,
    )
    def greet(self, ctx: OperationContext, params: GreetParams) -> Greeting:
        tenant = ctx.require_tenant()
        return Greeting(text=f"Hello, {params.name}!", tenant=tenant.slug)

    def health(self) -> HealthResult:
        return HealthResult(HealthStatus.HEALTHY, "always")
