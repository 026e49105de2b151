"""A test-only MCP server with open-world operations that call a local sandbox through an
UpstreamClient, so the pipeline's guards can be exercised against real HTTP faults."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings

from mcp_core.contracts import ErrorCode, MCPError, OperationContext
from mcp_core.db import deadline_transaction
from mcp_core.health import HealthResult, HealthStatus
from mcp_core.http import UpstreamClient
from mcp_core.sandbox import SandboxRequest, SandboxResponse, SandboxServer, route
from mcp_core.schemas import NoParams, Params, Result
from mcp_core.server import MCPServer, operation


class DummySandbox(SandboxServer):
    service = "dummy"

    @route("GET", r"/items/(?P<item_id>[\w-]+)")
    def get_item(self, request: SandboxRequest) -> SandboxResponse:
        return SandboxResponse(
            200, {"id": request.params["item_id"], "request_id": request.headers.get("x-request-id")}
        )

    @route("POST", r"/items")
    def create_item(self, request: SandboxRequest) -> SandboxResponse:
        return SandboxResponse(201, {"id": "new", **(request.json() or {})})

    @route("GET", r"/echo-auth")
    def echo_auth(self, request: SandboxRequest) -> SandboxResponse:
        # Like some real APIs: the rejected credential comes back in the error body.
        return SandboxResponse(401, {"message": f"invalid key {request.headers.get('authorization', '')}"})

    @route("GET", r"/set-cookie")
    def set_cookie(self, request: SandboxRequest) -> SandboxResponse:
        return SandboxResponse(
            200, {"cookie": request.headers.get("cookie")}, {"Set-Cookie": "sid=tenant-a; Path=/"}
        )

    @route("GET", r"/redirect")
    def redirect(self, request: SandboxRequest) -> SandboxResponse:
        return SandboxResponse(302, None, {"Location": "/items/elsewhere"})


class DummyClient(UpstreamClient):
    service = "dummy"
    backoff_base = 0.01
    backoff_cap = 0.05


def upstream_url() -> str:
    return getattr(settings, "DUMMY_UPSTREAM_URL", None) or os.environ["DUMMY_UPSTREAM_URL"]


class FetchParams(Params):
    item_id: str = "a1"


class CreateParams(Params):
    name: str


class SleepParams(Params):
    seconds: float


class ItemResult(Result):
    item: dict[str, Any]


class SleepResult(Result):
    slept: bool


class DummyServer(MCPServer):
    name = "dummy"
    description = "Test-only server with an upstream sandbox"

    def client(self) -> DummyClient:
        return DummyClient(
            base_url=upstream_url(), headers={"Authorization": "Bearer dummy-secret-token-123"}
        )

    @operation(
        description="Fetch one item upstream",
        params=FetchParams,
        result=ItemResult,
        scope="read",
        read_only=True,
        open_world=True,
        timeout=3,
    )
    def fetch(self, ctx: OperationContext, params: FetchParams) -> ItemResult:
        return ItemResult(item=self.client().request("GET", f"/items/{params.item_id}", ctx=ctx).json())

    @operation(
        description="Fetch one item upstream with a short deadline",
        params=FetchParams,
        result=ItemResult,
        scope="read",
        read_only=True,
        open_world=True,
        timeout=0.5,
    )
    def fetch_quick(self, ctx: OperationContext, params: FetchParams) -> ItemResult:
        return ItemResult(item=self.client().request("GET", f"/items/{params.item_id}", ctx=ctx).json())

    @operation(
        description="Create an item upstream (not idempotent)",
        params=CreateParams,
        result=ItemResult,
        scope="write",
        open_world=True,
        timeout=3,
    )
    def create(self, ctx: OperationContext, params: CreateParams) -> ItemResult:
        response = self.client().request("POST", "/items", ctx=ctx, json={"name": params.name})
        return ItemResult(item=response.json())

    @operation(
        description="Refuse the input (a caller error)",
        params=NoParams,
        result=ItemResult,
        scope="read",
        read_only=True,
    )
    def refuse(self, ctx: OperationContext, params: NoParams) -> ItemResult:
        raise MCPError(ErrorCode.VALIDATION_ERROR, "item_id: always wrong", details={"field": "item_id"})

    @operation(
        description="Sleep in the database, read-only, under a 0.3 s deadline",
        params=SleepParams,
        result=SleepResult,
        scope="read",
        read_only=True,
        timeout=0.3,
    )
    def db_sleep(self, ctx: OperationContext, params: SleepParams) -> SleepResult:
        from django.db import connection

        with deadline_transaction(ctx, read_only=True), connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(%s)", [params.seconds])
        return SleepResult(slept=True)

    def health(self) -> HealthResult:
        return HealthResult(HealthStatus.HEALTHY, "test server")
