"""The registry of MCP servers: `settings.MCP_SERVERS` (dotted paths) plus plugins, and the
inbound webhooks those servers declare (`MCPServer.webhooks`, see mcp_core.webhooks).

Servers are imported on first use and the registry is frozen from then on, so that every
part of a process sees the same set (NetBox's registry does the same).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import import_module
from types import MappingProxyType

from django.conf import settings
from django.utils.module_loading import import_string

from .server import MCPServer, Operation
from .webhooks import InboundWebhook, declared_webhooks


class RegistryError(Exception):
    pass


@dataclass(frozen=True)
class Registry:
    """The servers of this process, by name. Read-only: nothing adds or swaps a server after start."""

    servers: Mapping[str, MCPServer]
    # provider -> its inbound webhook, as declared by the server that receives it
    webhooks: Mapping[str, InboundWebhook] = field(default_factory=lambda: MappingProxyType({}))

    def get_webhook(self, provider: str) -> InboundWebhook | None:
        return self.webhooks.get(provider)

    def get_server(self, name: str) -> MCPServer | None:
        return self.servers.get(name)

    def get_operation(self, service: str, operation: str) -> Operation | None:
        server = self.servers.get(service)
        return None if server is None else server.operations.get(operation)

    def operations(self) -> list[Operation]:
        """Every operation, in a stable order (service, then operation name)."""
        return [
            op for name in sorted(self.servers) for _, op in sorted(self.servers[name].operations.items())
        ]

    def by_tool_name(self) -> dict[str, Operation]:
        return {op.tool_name: op for op in self.operations()}


def server_paths() -> list[str]:
    """Dotted paths of every server: the settings list, then installed plugins."""
    from .plugins import plugin_server_paths

    paths = list(settings.MCP_SERVERS)
    for path in plugin_server_paths():
        if path not in paths:
            paths.append(path)
    return paths


def build_registry(paths: list[str]) -> Registry:
    """Import and instantiate the servers; raise RegistryError naming the first bad entry."""
    servers: dict[str, MCPServer] = {}
    for path in paths:
        try:
            cls = import_string(path)
        except ImportError as exc:
            raise RegistryError(f"MCP server {path!r} cannot be imported: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, MCPServer)):
            raise RegistryError(f"MCP server {path!r} is not an MCPServer subclass")
        if not cls.name or not cls.name.isidentifier() or cls.name != cls.name.lower():
            raise RegistryError(f"MCP server {path!r} needs a lower-case identifier as its name")
        if cls.name in servers:
            raise RegistryError(f"MCP server name {cls.name!r} is registered twice ({path!r})")
        servers[cls.name] = cls()
    webhooks: dict[str, InboundWebhook] = {}
    for name, server in servers.items():
        for hook in _webhooks_of(name, server):
            if hook.provider in webhooks:
                raise RegistryError(
                    f"webhook provider {hook.provider!r} is declared twice "
                    f"({webhooks[hook.provider].service!r} and {name!r})"
                )
            webhooks[hook.provider] = hook
    return Registry(servers=MappingProxyType(servers), webhooks=MappingProxyType(webhooks))


def _webhooks_of(name: str, server: MCPServer) -> list[InboundWebhook]:
    """The @webhook declarations of the module a server names in `webhooks`."""
    path = type(server).webhooks
    if not path:
        return []
    try:
        module = import_module(path)
    except ImportError as exc:
        raise RegistryError(f"webhooks module {path!r} of server {name!r} cannot be imported: {exc}") from exc
    hooks = declared_webhooks(module)
    if not hooks:
        raise RegistryError(f"webhooks module {path!r} of server {name!r} declares no @webhook")
    for hook in hooks:
        provider = hook.provider
        # The provider is a URL segment (/webhooks/<provider>) and a 10-character column.
        if not (provider.isidentifier() and provider == provider.lower() and len(provider) <= 10):
            raise RegistryError(
                f"webhook provider {provider!r} of server {name!r} needs a lower-case identifier "
                "of at most 10 characters"
            )
    return [replace(hook, service=name) for hook in hooks]


_lock = threading.Lock()
_registry: Registry | None = None


def get_registry() -> Registry:
    global _registry
    if _registry is None:
        with _lock:
            if _registry is None:
                _registry = build_registry(server_paths())
    return _registry


def reset_registry_for_tests() -> None:
    """Forget the frozen registry (tests that change MCP_SERVERS or install plugins)."""
    global _registry
    with _lock:
        _registry = None
