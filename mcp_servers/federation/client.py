"""Clients of the federation server: a remote MCP server (the official SDK's client over
Streamable HTTP, behind an address guard, a size cap and the call's deadline) and the MCP
Registry the marketplace browses (mcp_core.http.UpstreamClient).

The SDK client is asynchronous. A call of a registered server runs on a kept session of the
process's session pool (pool.py: one background event loop owns the sessions); a client without
a registration (or with FEDERATION_SESSION_POOL_SIZE=0) opens a session in its own short event
loop (anyio.run) for the one call. Either way the call is bounded by its deadline.

The SDK and its HTTP stack are imported on first use, not with this module: importing them takes
seconds, which every web and worker process would otherwise pay at start-up.
"""

from __future__ import annotations

import contextvars
import hashlib
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlsplit

import anyio
import certifi
from django.conf import settings

from mcp_core.contracts import ErrorCode, MCPError, OperationContext
from mcp_core.http import UpstreamClient
from mcp_core.limits import shown

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


# --- outbound address guard -------------------------------------------------------------------


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(n, strict=False) for n in settings.FEDERATION_ALLOWED_NETWORKS]


def address_problem(address: Address) -> str | None:
    """Why this address may not be called, or None. Public addresses are allowed; private,
    loopback, link-local (cloud metadata at 169.254.169.254), shared, reserved, multicast and
    unspecified ones only inside FEDERATION_ALLOWED_NETWORKS."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in _allowed_networks()):
        return None
    if address.is_global and not address.is_multicast:
        return None
    return f"{address} is not a public address (allow its network in FEDERATION_ALLOWED_NETWORKS)"


def url_problem(url: str) -> str | None:
    """Why a remote server URL cannot be used, before any lookup: scheme, host, credentials."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "url: not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "url: must be an http(s) URL"
    if not parts.hostname:
        return "url: has no host"
    if parts.username or parts.password:
        return "url: must not carry credentials (use the bearer token field)"
    if port == 0:
        return "url: port 0 is not a port"
    return None


async def resolve_checked(host: str, port: int, *, scheme: str) -> Address:
    """The address to connect to: every address the host resolves to must be allowed, and
    plain http is only for addresses inside FEDERATION_ALLOWED_NETWORKS."""
    try:
        literal: Address | None = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise AddressRefused(f"{host}: cannot be resolved ({exc.strerror or exc})") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))
        if not addresses:
            raise AddressRefused(f"{host}: resolves to no address")
    for address in addresses:
        problem = address_problem(address)
        if problem:
            raise AddressRefused(f"{host}: {problem}")
    if scheme == "http" and not any(a in n for a in addresses for n in _allowed_networks()):
        raise AddressRefused(f"{host}: plain http is allowed only inside FEDERATION_ALLOWED_NETWORKS")
    return addresses[0]


class AddressRefused(Exception):
    pass


class AnswerTooLarge(Exception):
    pass


@lru_cache(maxsize=1)
def ssl_context() -> ssl.SSLContext:
    # Built once per process: creating a context per call would cost milliseconds each time.
    return ssl.create_default_context(cafile=certifi.where())


@dataclass
class Incident:
    """What the guard refused during one call; the SDK may wrap our exception in its own."""

    error: MCPError | None = None
    # The server answered 404 to a request carrying a session id: it no longer knows the
    # session (restarted, expired), and did not process the request.
    session_expired: bool = False
    # The HTTP status of a refused request (the SDK reports it only as a JSON-RPC error).
    http_status: int | None = None


# The incident of the call being made. The SDK runs a request's HTTP exchange in the context of
# the task that sent it, so the guard finds the right call's incident even on a shared session.
CURRENT_INCIDENT: contextvars.ContextVar[Incident | None] = contextvars.ContextVar(
    "federation_incident", default=None
)


# --- the remote MCP client --------------------------------------------------------------------


def too_large(cap: int) -> MCPError:
    return MCPError(
        ErrorCode.UPSTREAM_ERROR,
        f"The remote server's answer is larger than FEDERATION_MAX_RESPONSE_BYTES ({cap} bytes)",
        details={"problem": "answer_too_large", "limit_bytes": cap},
    )


@dataclass
class RemoteCall:
    """The outcome of one tools/call, as plain data."""

    is_error: bool
    content: list[dict[str, Any]] = field(default_factory=list)
    structured: Any = None

    def text(self) -> str:
        return " ".join(str(c.get("text", "")) for c in self.content if c.get("type") == "text")


def _unwrap(exc: BaseException) -> BaseException:
    """The first meaningful exception inside task-group wrappers."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


class RemoteMCPClient:
    """One remote MCP server, called with the platform's credential for it."""

    def __init__(
        self,
        *,
        url: str,
        era: str,
        token: str = "",
        service: str = "",
        registration: int | None = None,
        timeout: float | None = None,
    ) -> None:
        self.url, self.era, self.service = url, era, service
        self._token = token
        self.cap = settings.FEDERATION_MAX_RESPONSE_BYTES
        # The registration's own deadline bounds every HTTP exchange of a kept session.
        self.timeout = timeout or settings.FEDERATION_DEFAULT_TIMEOUT
        self.registration = registration

    def pool_key(self) -> tuple[int, str, str] | None:
        """The kept session this client uses: one per registration, credential and era (a
        changed URL, token, cap or deadline is a new session), or None for a session per call."""
        if self.registration is None or settings.FEDERATION_SESSION_POOL_SIZE == 0:
            return None
        material = "\0".join((self.url, self._token, str(self.cap), repr(self.timeout)))
        return (self.registration, hashlib.sha256(material.encode()).hexdigest()[:32], self.era)

    def __repr__(self) -> str:  # never show the token
        return f"RemoteMCPClient(url={self.url!r}, era={self.era!r})"

    def list_tools(self, timeout: float) -> list[dict[str, Any]]:
        """Every tool the server lists (all pages), as JSON-shaped dicts."""

        import mcp_types as types

        async def fetch(client) -> list[dict[str, Any]]:
            tools: list[dict[str, Any]] = []
            cursor = None
            for _ in range(50):  # a bounded number of pages: a hostile server may never end
                page = await client.session.list_tools(params=types.PaginatedRequestParams(cursor=cursor))
                tools.extend(t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
            return tools

        return self._run(fetch, timeout)

    def call_tool(self, name: str, arguments: dict[str, Any], ctx: OperationContext) -> RemoteCall:
        import mcp_types as types

        async def call(client) -> RemoteCall:
            # session.send_request, not Client.call_tool: the latter would list the tools again
            # to check the answer against the server's *current* schema; ours is the pinned one.
            result = await client.session.send_request(
                types.CallToolRequest(params=types.CallToolRequestParams(name=name, arguments=arguments)),
                types.CallToolResult,
            )
            return RemoteCall(
                is_error=bool(result.is_error),
                content=[c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in result.content],
                structured=result.structured_content,
            )

        return self._run(call, ctx.remaining())

    def _run(self, work: Callable[[Any], Awaitable[Any]], timeout: float) -> Any:
        if timeout <= 0:
            raise MCPError(ErrorCode.TIMEOUT, "No time left for the remote call")
        problem = url_problem(self.url)
        if problem:
            raise MCPError(ErrorCode.VALIDATION_ERROR, problem, details={"field": "url"})
        # The SDK is imported here, in the caller's thread and before the deadline starts
        # counting: the first call of a process would otherwise spend its time importing.
        import httpx2  # noqa: F401
        import mcp.client.streamable_http  # noqa: F401

        from . import transport  # noqa: F401

        incident = Incident()
        key = self.pool_key()
        token = CURRENT_INCIDENT.set(incident)
        try:
            if key is None:
                return anyio.run(self._session, work, timeout)
            from .pool import session_pool

            opener = lambda: self._connected(self.timeout, keep=True)  # noqa: E731
            return session_pool().call(key, opener, work, timeout, contextvars.copy_context())
        except MCPError:
            raise
        except BaseException as exc:  # noqa: BLE001 - every failure becomes an error code
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            raise self._mapped(_unwrap(exc), incident, timeout) from None
        finally:
            CURRENT_INCIDENT.reset(token)

    async def _session(self, work, timeout: float) -> Any:
        with anyio.fail_after(timeout):
            async with self._connected(timeout, keep=False) as client:
                return await work(client)

    @asynccontextmanager
    async def _connected(self, http_timeout: float, *, keep: bool) -> AsyncIterator[Any]:
        """An opened SDK client (after `initialize` in the handshake era). A kept session says
        goodbye (HTTP DELETE) when it closes; a one-call session does not wait for that."""
        import httpx2
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        from .transport import GuardedTransport

        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        http = httpx2.AsyncClient(
            headers=headers,
            transport=GuardedTransport(self.cap),
            timeout=httpx2.Timeout(http_timeout),
            follow_redirects=False,
            trust_env=False,
        )
        async with http:
            transport = streamable_http_client(
                self.url, http_client=http, max_sse_event_size=self.cap, terminate_on_close=keep
            )
            async with Client(transport, mode=self.era, raise_exceptions=True) as client:
                yield client

    def _mapped(self, exc: BaseException, incident: Incident, timeout: float) -> MCPError:
        import httpx2
        from mcp.shared.exceptions import MCPError as RemoteProtocolError

        if incident.error is not None:
            return incident.error
        if isinstance(exc, TimeoutError | httpx2.TimeoutException):
            return MCPError(
                ErrorCode.TIMEOUT,
                f"The remote server did not answer within {timeout:.1f}s",
                details={"problem": "remote_timeout"},
            )
        status = exc.response.status_code if isinstance(exc, httpx2.HTTPStatusError) else None
        # The SDK turns a refused POST into a JSON-RPC error; the guard saw the status. A
        # server's own JSON-RPC error body (its message) is kept, unless it is a refusal.
        if (
            status is None
            and isinstance(exc, RemoteProtocolError)
            and incident.http_status is not None
            and (incident.http_status in (401, 403) or exc.message == "Server returned an error response")
        ):
            status = incident.http_status
        if status is not None:
            what = "refused the platform's credential" if status in (401, 403) else f"answered HTTP {status}"
            return MCPError(
                ErrorCode.UPSTREAM_ERROR,
                f"The remote server {what}",
                details={"problem": "remote_http_error", "status": status},
            )
        if isinstance(exc, RemoteProtocolError):
            return MCPError(
                ErrorCode.UPSTREAM_ERROR,
                f"The remote server answered with an error: {shown(str(exc), 300)}",
                details={"problem": "remote_protocol_error"},
            )
        if isinstance(exc, httpx2.TransportError | OSError):
            return MCPError(
                ErrorCode.UPSTREAM_ERROR,
                f"The remote server cannot be reached ({type(exc).__name__})",
                details={"problem": "remote_unreachable"},
            )
        return MCPError(
            ErrorCode.UPSTREAM_ERROR,
            f"The remote server's answer is not valid MCP ({type(exc).__name__}: {shown(str(exc), 200)})",
            details={"problem": "remote_malformed"},
        )


# --- the MCP Registry (marketplace) -----------------------------------------------------------


class RegistryClient(UpstreamClient):
    """The official MCP Registry API (read-only, no authentication): /v0.1/servers."""

    service = "federation"

    def __init__(self, base_url: str | None = None) -> None:
        super().__init__(base_url=base_url or settings.FEDERATION_REGISTRY_URL)

    def search(self, *, search: str = "", cursor: str = "", limit: int = 30, ctx=None) -> dict[str, Any]:
        query: dict[str, Any] = {"limit": limit, "version": "latest"}
        if search:
            query["search"] = search
        if cursor:
            query["cursor"] = cursor
        return self.request("GET", "/v0.1/servers", params=query, ctx=ctx).json()

    def versions(self, name: str, *, ctx=None) -> dict[str, Any]:
        return self.request("GET", f"/v0.1/servers/{quote(name, safe='')}/versions", ctx=ctx).json()

    def version(self, name: str, version: str = "latest", *, ctx=None) -> dict[str, Any]:
        path = f"/v0.1/servers/{quote(name, safe='')}/versions/{quote(version, safe='')}"
        return self.request("GET", path, ctx=ctx).json()
