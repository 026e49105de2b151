"""A test-only server whose one read-only operation takes as long as it is told: a request that
is still in flight when the web process is stopped. It counts its starts in Redis, so the test
knows when every request is inside the process."""

from __future__ import annotations

import time
from typing import Annotated

import redis
from django.conf import settings
from msgspec import Meta

from mcp_core.contracts import OperationContext
from mcp_core.health import HealthResult, HealthStatus
from mcp_core.schemas import Params, Result
from mcp_core.server import MCPServer, operation


class WaitParams(Params):
    marker: Annotated[str, Meta(min_length=1, max_length=100)]
    seconds: Annotated[float, Meta(ge=0, le=20)] = 1.0


class WaitResult(Result):
    marker: str
    waited: float


class SlowServer(MCPServer):
    """Waits, then answers (production shutdown tests only)."""

    name = "slow"
    description = "Waits as long as asked (tests only)."

    @operation(
        description="Wait `seconds`, then answer with the marker.",
        params=WaitParams,
        result=WaitResult,
        scope="read",
        tenant_scoped=False,
        read_only=True,
    )
    def wait(self, ctx: OperationContext, params: WaitParams) -> WaitResult:
        client = redis.Redis.from_url(settings.REDIS_URL)
        client.incr(f"{params.marker}:started")
        client.expire(f"{params.marker}:started", 300)
        time.sleep(params.seconds)
        return WaitResult(marker=params.marker, waited=params.seconds)

    def health(self) -> HealthResult:
        return HealthResult(HealthStatus.HEALTHY, "always")
