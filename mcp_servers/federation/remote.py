"""A remote MCP server as a service of the registry: its approved (pinned) tools are its
operations, called through the pipeline like any other, with the platform's credential."""

from __future__ import annotations

import logging
from types import MappingProxyType
from typing import Any

from mcp_core.contracts import ErrorCode, MCPError, OperationContext
from mcp_core.health import HealthResult, HealthStatus
from mcp_core.limits import shown
from mcp_core.schemas import json_params_decoder, jsonschema_validator, schema_violation
from mcp_core.server import Annotations, DynamicSchemas, MCPServer, Operation

from . import services
from .client import RemoteMCPClient
from .models import RemoteServer, RemoteTool
from .schemas import CONTENT_RESULT_SCHEMA, canonical, digest

logger = logging.getLogger(__name__)

HEALTH_TIMEOUT_SECONDS = 5.0


def _call(server: RemoteService, ctx: OperationContext, params: Any) -> Any:
    raise NotImplementedError  # RemoteService.call runs every operation; never reached


class RemoteService(MCPServer):
    """One enabled remote MCP server with approved tools, as the service `fed_<slug>`."""

    def __init__(self, record: RemoteServer, tools: list[RemoteTool]) -> None:
        self.name = record.service  # type: ignore[misc]  # per instance: derived at run time
        self.description = (  # type: ignore[misc]
            f"Remote MCP server {record.title!r} (federated; {record.url.split('/')[2]})"
        )
        self.record_id = record.pk
        self.pinned: dict[str, str] = {t.name: t.digest for t in tools}
        self._remote_names: dict[str, str] = {}
        self._output_validators: dict[str, Any] = {}
        tenant_ids = None if record.all_tenants else frozenset(t.pk for t in record.tenants.all())
        operations: dict[str, Operation] = {}
        for tool in tools:
            operations[tool.operation] = self._operation(record, tool, tenant_ids)
        self.operations = MappingProxyType(operations)  # type: ignore[misc]

    def _operation(self, record: RemoteServer, tool: RemoteTool, tenant_ids) -> Operation:
        definition = tool.definition
        hints = definition.get("annotations") or {}
        read_only = hints.get("readOnlyHint") is True
        params_schema = dict(definition["inputSchema"])
        params_schema["additionalProperties"] = False
        params_schema.setdefault("properties", {})
        output = definition.get("outputSchema")
        if output is not None:
            self._output_validators[tool.operation] = jsonschema_validator(output)
        self._remote_names[tool.operation] = tool.name
        description = (definition.get("description") or definition.get("title") or tool.name).strip()
        return Operation(
            name=tool.operation,
            description=f"{description}\n\n(Remote tool {tool.name!r} of {record.title}, pinned v{tool.version}.)",
            params=dict,
            result=dict,
            annotations=Annotations(
                read_only=read_only,
                # MCP's defaults: a tool that is not read-only is destructive unless it says not.
                destructive=not read_only and hints.get("destructiveHint", True) is not False,
                idempotent=read_only or hints.get("idempotentHint") is True,
                open_world=True,
            ),
            scope_level="read" if read_only else "write",
            tenant_scoped=True,
            timeout=record.timeout,
            platform_only=False,
            func=_call,
            service=record.service,
            schemas=DynamicSchemas(
                params=params_schema,
                result=output if output is not None else CONTENT_RESULT_SCHEMA,
                decode=json_params_decoder(params_schema),
            ),
            revision=tool.digest,
            tenant_ids=tenant_ids,
        )

    def _record(self) -> RemoteServer:
        # Read on every call: a disabled server or a rotated credential counts at once, in
        # every process, without waiting for the registry to be rebuilt.
        record = RemoteServer.objects.filter(pk=self.record_id, enabled=True).first()
        if record is None:
            raise MCPError(ErrorCode.NOT_CONFIGURED, f"{self.name}: this remote server is disabled")
        return record

    def client(self, record: RemoteServer) -> RemoteMCPClient:
        return services.client_for(record)

    def call(self, op: Operation, ctx: OperationContext, params: Any) -> Any:
        record = self._record()
        answer = self.client(record).call_tool(self._remote_names[op.name], params, ctx)
        if answer.is_error:
            raise MCPError(
                ErrorCode.UPSTREAM_ERROR,
                f"The remote tool failed: {shown(answer.text() or 'no message', 500)}",
                details={"problem": "remote_tool_error"},
            )
        validator = self._output_validators.get(op.name)
        if validator is None:
            return {"content": answer.content}
        if not isinstance(answer.structured, dict):
            raise MCPError(
                ErrorCode.UPSTREAM_ERROR,
                "The remote tool's answer has no structured content, but its pinned output schema needs it",
                details={"problem": "remote_answer_invalid"},
            )
        violation = schema_violation(validator, answer.structured)
        if violation is not None:
            raise MCPError(
                ErrorCode.UPSTREAM_ERROR,
                f"The remote tool's answer does not match its pinned output schema: {shown(str(violation), 300)}",
                details={"problem": "remote_answer_invalid"},
            )
        return answer.structured

    def is_configured(self) -> bool:
        return True  # a remote server without a credential is a valid (public) server

    def health(self) -> HealthResult:
        """Reachable and listing the pinned tools: healthy; listing changed definitions
        (waiting for an operator) or missing some: degraded; unreachable: unhealthy."""
        try:
            record = self._record()
            listed = self.client(record).list_tools(min(HEALTH_TIMEOUT_SECONDS, record.timeout))
        except MCPError as exc:
            return HealthResult(HealthStatus.UNHEALTHY, exc.message, data={"code": str(exc.code)})
        current = {t.get("name"): digest(canonical(t)) for t in listed if isinstance(t, dict)}
        changed = sorted(n for n, d in self.pinned.items() if n in current and current[n] != d)
        missing = sorted(n for n in self.pinned if n not in current)
        data = {"tools": len(self.pinned), "changed": changed, "missing": missing}
        if changed or missing:
            parts = []
            if changed:
                parts.append(f"{len(changed)} tool(s) changed since approval: {', '.join(changed[:5])}")
            if missing:
                parts.append(f"{len(missing)} pinned tool(s) no longer listed: {', '.join(missing[:5])}")
            return HealthResult(HealthStatus.DEGRADED, "; ".join(parts), data=data)
        return HealthResult(
            HealthStatus.HEALTHY, f"{len(self.pinned)} pinned tool(s) listed unchanged", data=data
        )


def remote_services() -> list[RemoteService]:
    """The registry's run-time servers: every enabled remote server with approved tools that
    the remote still lists."""
    services = []
    servers = RemoteServer.objects.filter(enabled=True).prefetch_related("tenants")
    for record in servers:
        tools = list(
            record.tools.filter(status=RemoteTool.Status.APPROVED, removed=False).order_by("operation")
        )
        if tools:
            services.append(RemoteService(record, tools))
    return services
