"""Describing operations to callers: the one source for the DRF discovery endpoint, the MCP
tool list, the admin console and the test matrices."""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from .contracts import Principal
from .registry import get_registry
from .schemas import json_schema
from .server import Operation


@lru_cache(maxsize=512)
def params_schema(op: Operation) -> dict[str, Any]:
    if op.schemas is not None:
        return copy.deepcopy(dict(op.schemas.params))
    return json_schema(op.params)


@lru_cache(maxsize=512)
def result_schema(op: Operation) -> dict[str, Any]:
    if op.schemas is not None:
        return copy.deepcopy(dict(op.schemas.result))
    return json_schema(op.result)


def describe_operation(op: Operation) -> dict[str, Any]:
    return {
        "name": op.name,
        "tool_name": op.tool_name,
        "description": op.description,
        "scope": op.scope,
        "tenant_scoped": op.tenant_scoped,
        "platform_only": op.platform_only,
        "timeout_s": op.timeout,
        "annotations": {
            "read_only": op.annotations.read_only,
            "destructive": op.annotations.destructive,
            "idempotent": op.annotations.idempotent,
            "open_world": op.annotations.open_world,
        },
        "params_schema": params_schema(op),
        "result_schema": result_schema(op),
    }


def operation_allowed(op: Operation, principal: Principal) -> bool:
    if not principal.has_scope(op.scope):
        return False
    if not op.available_to(principal.tenant_id):
        return False
    return not (op.platform_only and not principal.is_platform)


def operations_for(principal: Principal) -> list[Operation]:
    return [op for op in get_registry().operations() if operation_allowed(op, principal)]


def services_for(principal: Principal) -> list[dict[str, Any]]:
    registry = get_registry()
    by_service: dict[str, list[Operation]] = {}
    for op in operations_for(principal):
        by_service.setdefault(op.service, []).append(op)
    return [
        {
            "name": name,
            "description": registry.servers[name].description,
            "operations": [describe_operation(op) for op in ops],
        }
        for name, ops in sorted(by_service.items())
    ]
