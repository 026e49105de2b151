"""The frozen registry cannot be changed after start: its servers and each server's operations
are read-only mappings."""

from __future__ import annotations

import pytest

from mcp_core.registry import get_registry


def test_it_refuses_to_add_or_replace_a_server():
    registry = get_registry()
    with pytest.raises(TypeError):
        registry.servers["intruder"] = registry.servers["database"]
    with pytest.raises(TypeError):
        del registry.servers["database"]
    assert "intruder" not in registry.servers


def test_it_refuses_to_add_or_replace_an_operation():
    server = get_registry().servers["database"]
    name = next(iter(server.operations))
    with pytest.raises(TypeError):
        server.operations[name] = server.operations[name]
    with pytest.raises(TypeError):
        server.operations["intruder"] = server.operations[name]
    assert "intruder" not in server.operations


def test_it_refuses_to_replace_the_mapping():
    registry = get_registry()
    with pytest.raises(AttributeError):
        registry.servers = {}
