"""Shared setup of the ui_audit tests."""

from __future__ import annotations

from mcp_core.contracts import Principal
from mcp_core.pipeline import call_operation

OPERATOR = Principal(kind="api_key", name="key:test", scopes=frozenset({"ui_audit:read"}))


def call(operation, **params):
    return call_operation("ui_audit", operation, params, principal=OPERATOR)
