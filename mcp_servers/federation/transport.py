"""The HTTP transport under the remote MCP client: the address guard and the size cap
(imported on first use by client.py, with the SDK's HTTP stack)."""

from __future__ import annotations

import httpx2

from mcp_core.contracts import ErrorCode, MCPError

from .client import (
    CURRENT_INCIDENT,
    AddressRefused,
    AnswerTooLarge,
    Incident,
    resolve_checked,
    ssl_context,
    too_large,
)


class _StreamTooLarge(AnswerTooLarge, httpx2.StreamError):
    """Cut mid-body: as a stream error the SDK fails this one request, not the whole session."""


class _CappedStream(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, cap: int, incident: Incident) -> None:
        self.inner, self.cap, self.incident = inner, cap, incident

    async def __aiter__(self):
        total = 0
        async for chunk in self.inner:
            total += len(chunk)
            if total > self.cap:
                self.incident.error = too_large(self.cap)
                raise _StreamTooLarge(self.incident.error.message)
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class GuardedTransport(httpx2.AsyncBaseTransport):
    """Every request, redirects included: the host is resolved once and checked, the
    connection goes to that checked address (no second lookup a rebinding DNS could answer
    differently; TLS still verifies the host name), and the answer is cut at the size cap."""

    def __init__(self, cap: int) -> None:
        self.inner = httpx2.AsyncHTTPTransport(verify=ssl_context(), trust_env=False)
        self.cap = cap

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        # The call this request belongs to (a kept session serves many); a request no call
        # sent (a stream the session opened itself) records into a throw-away incident.
        incident = CURRENT_INCIDENT.get() or Incident()
        host = request.url.host
        scheme = request.url.scheme
        try:
            address = await resolve_checked(host, request.url.port or 443, scheme=scheme)
        except AddressRefused as exc:
            incident.error = MCPError(
                ErrorCode.FORBIDDEN,
                f"Outbound address refused: {exc}",
                details={"problem": "address_refused"},
            )
            raise
        if scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": host}
        shown_host = f"[{address}]" if address.version == 6 else str(address)
        request.url = request.url.copy_with(host=shown_host.strip("[]"))
        response = await self.inner.handle_async_request(request)
        if response.status_code == 404 and "mcp-session-id" in request.headers:
            incident.session_expired = True
        elif response.status_code >= 400 and request.method == "POST":
            incident.http_status = response.status_code
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.cap:
            await response.aclose()
            incident.error = too_large(self.cap)
            raise AnswerTooLarge(incident.error.message)
        response.stream = _CappedStream(response.stream, self.cap, incident)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()
