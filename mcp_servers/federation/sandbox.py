"""A sandbox MCP Registry: the official registry's read-only API (/v0.1/servers, versions,
one version) serving a handful of server.json entries, for the marketplace's tests and for a
newcomer with SANDBOX=1.

Contract (reference/phase2-apis.md, "MCP Registry"): no authentication; `limit`, `cursor`,
`search` (substring of the name), `version=latest`, `updated_since`; the next page's cursor in
`metadata.nextCursor`; entries as {"server": server.json, "_meta": {official registry meta}};
unknown names answer 404 with an RFC 7807 problem body.

Its entries with a remote point at real MCP servers it starts next to itself
(sandbox_remotes.py: the SDK's server on 127.0.0.1, the ports after the registry's own, or free
ports when the registry has one), so an installed entry's tools can be fetched, approved and
called; ENTRIES keeps the example addresses a real registry would list.
"""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import unquote

from mcp_core.sandbox import SandboxRequest, SandboxResponse, SandboxServer, route

from .sandbox_remotes import SandboxRemotes

OFFICIAL = "io.modelcontextprotocol.registry/official"
SCHEMA = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"
MAX_LIMIT = 100


def _entry(name: str, version: str, title: str, description: str, url: str | None, when: str, latest: bool):
    server: dict[str, Any] = {
        "$schema": SCHEMA,
        "name": name,
        "title": title,
        "description": description,
        "version": version,
        "repository": {
            "url": f"https://github.com/{name.split('/')[-1]}/{name.split('/')[-1]}",
            "source": "github",
        },
    }
    if url:
        server["remotes"] = [{"type": "streamable-http", "url": url}]
    else:
        server["packages"] = [
            {
                "registryType": "npm",
                "identifier": f"@example/{name.split('/')[-1]}",
                "version": version,
                "transport": {"type": "stdio"},
            }
        ]
    meta = {"status": "active", "publishedAt": when, "updatedAt": when, "isLatest": latest}
    return {"server": server, "_meta": {OFFICIAL: meta}}


ENTRIES: list[dict[str, Any]] = [
    _entry(
        "io.example/weather",
        "1.0.0",
        "Weather",
        "Forecasts and current conditions by city.",
        "https://weather.mcp.example.com/mcp",
        "2026-10-01T09:00:00Z",
        False,
    ),
    _entry(
        "io.example/weather",
        "1.1.0",
        "Weather",
        "Forecasts, current conditions and alerts by city.",
        "https://weather.mcp.example.com/mcp",
        "2026-11-02T09:00:00Z",
        True,
    ),
    _entry(
        "io.example/translate",
        "0.4.2",
        "Translate",
        "Translate short texts between languages.",
        "https://translate.mcp.example.com/mcp",
        "2026-09-15T12:00:00Z",
        True,
    ),
    _entry(
        "io.example/holidays",
        "2.0.0",
        "Public holidays",
        "Public holidays by country and region.",
        "https://holidays.mcp.example.com/mcp",
        "2026-08-20T08:30:00Z",
        True,
    ),
    _entry(
        "io.example/files",
        "3.1.0",
        "Local files",
        "Read files on this machine (a local package).",
        None,
        "2026-07-07T07:00:00Z",
        True,
    ),
    _entry(
        "io.example/postcodes",
        "1.2.0",
        "Postcodes",
        "Look up German postcodes and their towns.",
        "https://postcodes.mcp.example.com/mcp",
        "2026-11-20T16:00:00Z",
        True,
    ),
]


def _problem(status: int, detail: str) -> SandboxResponse:
    title = {400: "Bad Request", 404: "Not Found"}.get(status, "Error")
    return SandboxResponse(
        status,
        {"title": title, "status": status, "detail": detail},
        {"Content-Type": "application/problem+json"},
    )


class RegistrySandbox(SandboxServer):
    """The MCP Registry API over a fixed list of entries (ENTRIES, plus any a test adds)."""

    service = "federation"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, serve_remotes: bool = True) -> None:
        super().__init__(host, port)
        self.entries = copy.deepcopy(ENTRIES)
        self.remotes = SandboxRemotes(host, port + 1 if port else 0) if serve_remotes else None

    def start(self) -> RegistrySandbox:
        if self.remotes is not None:
            urls = self.remotes.start()
            for entry in self.entries:
                for remote in entry["server"].get("remotes") or []:
                    remote["url"] = urls.get(entry["server"]["name"], remote["url"])
        try:
            super().start()
        except BaseException:
            if self.remotes is not None:
                self.remotes.stop()
            raise
        return self

    def stop(self) -> None:
        super().stop()
        if self.remotes is not None:
            self.remotes.stop()

    def describe(self) -> str:
        if self.remotes is None:
            return ""
        ports = ", ".join(f"{n.split('/')[-1]} {u}" for n, u in self.remotes.urls.items())
        return f"remote MCP servers: {ports}"

    def not_found(self, request: SandboxRequest) -> SandboxResponse:
        return _problem(404, f"no route for {request.method} {request.path}")

    def fault_body(self, status: int) -> Any:
        return {"title": "Injected", "status": status, "detail": f"injected fault {status}"}

    @route("GET", r"/v0\.1/servers")
    def list_servers(self, request: SandboxRequest) -> SandboxResponse:
        try:
            limit = int(request.arg("limit", "30"))
            offset = int(request.arg("cursor") or 0)
        except ValueError:
            return _problem(400, "limit and cursor must be integers")
        if not 1 <= limit <= MAX_LIMIT or offset < 0:
            return _problem(400, f"limit must be between 1 and {MAX_LIMIT}")
        found = self.entries
        search = (request.arg("search") or "").lower()
        if search:
            found = [e for e in found if search in e["server"]["name"].lower()]
        version = request.arg("version")
        if version == "latest":
            found = [e for e in found if e["_meta"][OFFICIAL]["isLatest"]]
        elif version:
            found = [e for e in found if e["server"]["version"] == version]
        since = request.arg("updated_since")
        if since:
            found = [e for e in found if e["_meta"][OFFICIAL]["updatedAt"] > since]
        page = found[offset : offset + limit]
        metadata: dict[str, Any] = {"count": len(page)}
        if offset + limit < len(found):
            metadata["nextCursor"] = str(offset + limit)
        return SandboxResponse(200, {"servers": page, "metadata": metadata})

    @route("GET", r"/v0\.1/servers/(?P<name>[^/]+)/versions")
    def versions(self, request: SandboxRequest) -> SandboxResponse:
        name = unquote(request.params["name"])
        found = [e for e in self.entries if e["server"]["name"] == name]
        if not found:
            return _problem(404, "Server not found")
        return SandboxResponse(200, {"servers": found, "metadata": {"count": len(found)}})

    @route("GET", r"/v0\.1/servers/(?P<name>[^/]+)/versions/(?P<version>[^/]+)")
    def version(self, request: SandboxRequest) -> SandboxResponse:
        name, version = unquote(request.params["name"]), unquote(request.params["version"])
        for entry in self.entries:
            server = entry["server"]
            if server["name"] == name and (
                server["version"] == version or (version == "latest" and entry["_meta"][OFFICIAL]["isLatest"])
            ):
                return SandboxResponse(200, entry)
        return _problem(404, "Server not found")


SANDBOX_CLASS = RegistrySandbox
