"""The registry of MCP servers: `settings.MCP_SERVERS` (dotted paths) plus plugins, and the
inbound webhooks those servers declare (`MCPServer.webhooks`, see mcp_core.webhooks).

Servers are imported on first use and that set is frozen from then on, so that every part of a
process sees the same set (NetBox's registry does the same).

One governed path adds services at run time: a registered server may derive servers from its
own records (`MCPServer.dynamic_servers()`, e.g. the federation server's approved remote MCP
servers). Whoever changes those records calls `bump_registry_version()`; every process notices
the new shared version (in the cache, so across instances) within MCP_REGISTRY_RECHECK_SECONDS
and swaps in a new frozen Registry as a whole. A Registry object itself never changes, so a
call that holds one sees one consistent set, and the static servers keep their instances.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import import_module
from types import MappingProxyType

from django.conf import settings
from django.core.cache import cache
from django.utils.module_loading import import_string

from .server import MCPServer, Operation
from .webhooks import InboundWebhook, declared_webhooks

logger = logging.getLogger(__name__)

# Servers derived at run time are named with this prefix, so that their tools can never take a
# static server's tool name (`<service>_<operation>`).
DYNAMIC_PREFIX = "fed_"
VERSION_KEY = "mcp:registry:version"


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
        if cls.name.startswith(DYNAMIC_PREFIX):
            raise RegistryError(
                f"MCP server {path!r}: names starting with {DYNAMIC_PREFIX!r} are kept for federated servers"
            )
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


def with_dynamic_servers(static: Registry) -> tuple[Registry, bool]:
    """The static registry plus every server its servers derive from their records, and
    whether every provider answered.

    A derived server with a bad or taken name is left out and logged; one provider failing
    (its table missing before migrate, a database hiccup) costs only its own servers, and the
    caller asks again later."""
    servers = dict(static.servers)
    complete = True
    for provider in list(static.servers.values()):
        try:
            derived = provider.dynamic_servers()
        except Exception as exc:
            complete = False
            logger.warning("MCP server %s: its run-time servers could not be read: %s", provider.name, exc)
            continue
        for server in derived:
            name = server.name
            if not (
                isinstance(server, MCPServer) and name.startswith(DYNAMIC_PREFIX) and name.isidentifier()
            ):
                logger.error("MCP server %s: derived server %r left out (bad name)", provider.name, name)
            elif name in servers:
                logger.error("MCP server %s: derived server %r left out (name taken)", provider.name, name)
            else:
                servers[name] = server
    return Registry(servers=MappingProxyType(servers)), complete


_lock = threading.Lock()
_static: Registry | None = None
_registry: Registry | None = None
_state = {"version": None, "checked": 0.0}


def _shared_version() -> object:
    try:
        return cache.get(VERSION_KEY, 0)
    except Exception:
        # The cache down must not take every call down: keep the servers we have.
        logger.exception("registry version unreadable; keeping the current servers")
        return _state["version"]


def get_registry() -> Registry:
    global _registry, _static
    registry = _registry
    now = time.monotonic()
    if registry is not None and now - _state["checked"] < settings.MCP_REGISTRY_RECHECK_SECONDS:
        return registry
    with _lock:
        if _static is None:
            _static = build_registry(server_paths())
        if _registry is not None and now - _state["checked"] < settings.MCP_REGISTRY_RECHECK_SECONDS:
            return _registry
        version = _shared_version()
        if _registry is None or version != _state["version"]:
            # No version published yet: nothing derived at run time was ever approved through
            # this cache, and the database is not asked (a test run collecting its matrices, a
            # process starting before migrate). ensure_registry_version() heals a lost key.
            if version:
                _registry, complete = with_dynamic_servers(_static)
            else:
                _registry, complete = _static, True
            # Incomplete: read again at the next recheck rather than keep a partial set.
            _state["version"] = version if complete else None
        _state["checked"] = time.monotonic()
        return _registry


def bump_registry_version() -> None:
    """Say that some server's run-time servers changed: every process rebuilds its registry
    (this one at once, the others within MCP_REGISTRY_RECHECK_SECONDS)."""
    try:
        cache.add(VERSION_KEY, 0, timeout=None)
        cache.incr(VERSION_KEY)
    except Exception:
        logger.exception("could not publish a new registry version")
    with _lock:
        _state["checked"] = 0.0
        _state["version"] = None


def ensure_registry_version() -> None:
    """Publish a version if the cache lost it (a flushed Redis), so that servers derived at
    run time come back; their provider calls this when it knows it has some."""
    try:
        if cache.add(VERSION_KEY, 1, timeout=None):
            with _lock:
                _state["checked"] = 0.0
                _state["version"] = None
    except Exception:
        logger.exception("could not publish a registry version")


def reset_registry_for_tests() -> None:
    """Forget the frozen registry (tests that change MCP_SERVERS or install plugins)."""
    global _registry, _static
    with _lock:
        _registry = None
        _static = None
        _state["version"] = None
        _state["checked"] = 0.0
