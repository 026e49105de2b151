"""System checks: a bad registry stops `manage.py check` (and start-up) with a clear message."""

from django.core import checks

from .registry import RegistryError, build_registry, server_paths
from .schemas import Params, Result, json_schema


@checks.register("mcp")
def check_registry(app_configs, **kwargs):
    errors = []
    try:
        registry = build_registry(server_paths())
    except RegistryError as exc:
        return [checks.Error(str(exc), id="mcp.E001")]
    for op in registry.operations():
        where = f"{op.service}.{op.name}"
        if not op.description.strip():
            errors.append(checks.Error(f"Operation {where} has no description", id="mcp.E002"))
        if not (isinstance(op.params, type) and issubclass(op.params, Params)):
            errors.append(
                checks.Error(
                    f"Operation {where}: params must subclass mcp_core.schemas.Params",
                    id="mcp.E003",
                )
            )
            continue
        if not (isinstance(op.result, type) and issubclass(op.result, Result)):
            errors.append(
                checks.Error(
                    f"Operation {where}: result must subclass mcp_core.schemas.Result",
                    id="mcp.E003",
                )
            )
            continue
        for kind, struct in (("params", op.params), ("result", op.result)):
            try:
                schema = json_schema(struct)
            except Exception as exc:
                errors.append(checks.Error(f"Operation {where}: {kind} schema fails: {exc}", id="mcp.E004"))
                continue
            if schema.get("type") != "object":
                errors.append(
                    checks.Error(f"Operation {where}: {kind} schema is not an object", id="mcp.E004")
                )
        if op.annotations.read_only and op.scope_level != "read" and op.scope_level != "admin":
            errors.append(checks.Error(f"Operation {where} is read-only but needs {op.scope}", id="mcp.E005"))
        if not op.annotations.read_only and op.scope_level == "read":
            errors.append(checks.Error(f"Operation {where} writes but only needs {op.scope}", id="mcp.E005"))
    return errors
