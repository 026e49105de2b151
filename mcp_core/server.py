"""The MCPServer base class and the one way to declare an operation."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Literal

from .contracts import OperationContext
from .health import HealthResult

ScopeLevel = Literal["read", "write", "admin"]


@dataclass(frozen=True, slots=True)
class Annotations:
    read_only: bool = False
    destructive: bool = False
    idempotent: bool = False
    open_world: bool = False


@dataclass(frozen=True)
class Operation:
    """Everything about one operation, declared once on its server class."""

    name: str
    description: str
    params: type
    result: type
    annotations: Annotations
    scope_level: ScopeLevel
    tenant_scoped: bool
    timeout: float | None
    platform_only: bool
    func: Callable[..., Any] = field(repr=False)
    service: str = ""
    # Set only for operations a server derives at run time from records (federated remote
    # tools, mcp_core.registry's governed path): their params and result are JSON Schemas,
    # not Structs. `revision` tells two versions of one such operation apart (caches key on it);
    # `tenant_ids` limits the operation to these tenants (None: every tenant).
    schemas: DynamicSchemas | None = field(default=None, repr=False, compare=False)
    revision: str = ""
    tenant_ids: frozenset[int] | None = None
    # How many calls one call counts as against the tenant's rate limit (a batch: its items).
    weight: Callable[[Any], int] | None = field(default=None, repr=False, compare=False)

    @property
    def scope(self) -> str:
        return f"{self.service}:{self.scope_level}"

    @property
    def tool_name(self) -> str:
        return f"{self.service}_{self.name}"

    def decode(self, raw: Any) -> Any:
        """Validated params, or msgspec.ValidationError naming the field."""
        from .schemas import decode_params

        if self.schemas is not None:
            return self.schemas.decode(raw)
        return decode_params(self.params, raw)

    def available_to(self, tenant_id: int | None) -> bool:
        """Whether a tenant may use this operation (platform-wide callers: always)."""
        return self.tenant_ids is None or tenant_id is None or tenant_id in self.tenant_ids


@dataclass(frozen=True)
class DynamicSchemas:
    """The JSON Schemas of an operation derived at run time, and its params decoder."""

    params: Mapping[str, Any]
    result: Mapping[str, Any]
    decode: Callable[[Any], Any] = field(repr=False)


def operation(
    *,
    description: str,
    params: type,
    result: type,
    scope: ScopeLevel,
    tenant_scoped: bool = True,
    read_only: bool = False,
    destructive: bool = False,
    idempotent: bool = False,
    open_world: bool = False,
    timeout: float | None = None,
    platform_only: bool = False,
    name: str | None = None,
    weight: Callable[[Any], int] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a server method as an operation. The method is called as
    `method(self, ctx: OperationContext, params) -> result instance`.

    scope: the level a key needs on this service (read, write, admin).
    tenant_scoped: the operation works on one tenant's records; tenant keys act on their
    own tenant, platform keys must name one. platform_only: tenant keys are refused.
    timeout: the call's deadline in seconds (settings.MCP_DEFAULT_TIMEOUT when None).
    weight: params -> how many calls this call counts as against the tenant's rate limit
    (default 1); a batch operation counts its items, so batching never bypasses the plan.
    """

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        func.__mcp_operation__ = Operation(  # type: ignore[attr-defined]
            name=name or func.__name__,
            description=inspect.cleandoc(description),
            params=params,
            result=result,
            annotations=Annotations(
                read_only=read_only,
                destructive=destructive,
                idempotent=idempotent or read_only,
                open_world=open_world,
            ),
            scope_level=scope,
            tenant_scoped=tenant_scoped,
            timeout=timeout,
            platform_only=platform_only,
            func=func,
            weight=weight,
        )
        return func

    return decorator


@dataclass(frozen=True, slots=True)
class ServerGauge:
    """One value a server reports for /metrics, read at scrape time (askpro_<name>{labels}).

    Every gauge of one name must carry the same label names."""

    name: str
    help: str
    labels: dict[str, str]
    value: float


class MCPServer:
    """Base for every MCP server: a named set of operations plus a health check.

    Subclasses set `name` and `description`, declare operations with @operation and
    override `health()`; a server whose provider sends webhooks names its `webhooks` module. A server is instantiated once per process by the registry, so it
    must not keep per-request state.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    # Dotted path of the module declaring this server's inbound webhooks with @webhook
    # (mcp_core.webhooks), e.g. "mcp_servers.calcom.webhooks"; "" when it receives none.
    webhooks: ClassVar[str] = ""
    # Read-only, filled from the @operation declarations when the subclass is defined.
    operations: ClassVar[Mapping[str, Operation]] = MappingProxyType({})

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found: dict[str, Operation] = {}
        for klass in reversed(cls.__mro__):
            for attr in vars(klass).values():
                declared = getattr(attr, "__mcp_operation__", None)
                if isinstance(declared, Operation):
                    found[declared.name] = declared
        cls.operations = MappingProxyType(
            {op_name: Operation(**{**op.__dict__, "service": cls.name}) for op_name, op in found.items()}
        )

    def call(self, op: Operation, ctx: OperationContext, params: Any) -> Any:
        return op.func(self, ctx, params)

    def is_configured(self) -> bool:
        """False when the server lacks credentials; its health then says not_configured."""
        return True

    def gauges(self) -> list[ServerGauge]:
        """Figures for /metrics that live outside any one process (a backlog, a queue depth),
        read at scrape time. Must be cheap; may raise (the scrape reports the source as down)."""
        return []

    def health(self) -> HealthResult:
        """Check the server's dependencies cheaply. Must not raise; must honour short timeouts."""
        raise NotImplementedError

    def dynamic_servers(self) -> list[MCPServer]:
        """Servers this server derives at run time from its records (federation: one per remote
        MCP server with approved tools). The one governed way a service joins the registry
        after start: mcp_core.registry asks for them again whenever the shared registry version
        changes (bump_registry_version), and they pass the same system of scopes, tenants,
        guards and audit as every other server. Reads the database; may raise."""
        return []
