"""A trivial server for measuring the orchestrator's own overhead (no I/O in the operation)."""

from mcp_core.contracts import OperationContext
from mcp_core.health import HealthResult, HealthStatus
from mcp_core.schemas import Params, Result
from mcp_core.server import MCPServer, operation


class EchoParams(Params):
    text: str = "hello"


class EchoResult(Result):
    text: str


class EchoServer(MCPServer):
    """Echoes its input; used by benchmarks and tests that need an operation without I/O."""

    name = "echo"
    description = "Echoes text back (benchmarks only)."

    @operation(
        description="Return the text unchanged.",
        params=EchoParams,
        result=EchoResult,
        scope="read",
        tenant_scoped=False,
        read_only=True,
    )
    def echo(self, ctx: OperationContext, params: EchoParams) -> EchoResult:
        return EchoResult(text=params.text)

    @operation(
        description="Return the text unchanged, for the key's tenant (so the tenant's rate limit applies).",
        params=EchoParams,
        result=EchoResult,
        scope="read",
        read_only=True,
    )
    def tenant_echo(self, ctx: OperationContext, params: EchoParams) -> EchoResult:
        return EchoResult(text=params.text)

    def health(self) -> HealthResult:
        return HealthResult(HealthStatus.HEALTHY, "always")
