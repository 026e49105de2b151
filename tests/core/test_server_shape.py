"""Every registered server has the same file set (CONTRIBUTING.md, "The file set of a server"),
and every test of a server is named `test_it_...`.

A server that calls an outside API is one with a sandbox port (settings.SANDBOX_PORTS); the
others are local. A server stores records when its app has models; a provider that sends us
webhooks has its handler in the webhooks app (one ingestion path: persist first, then a queue).
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings

from mcp_core.registry import get_registry
from mcp_servers.webhooks.services import DEFAULT_HANDLERS

ROOT = Path(__file__).resolve().parents[2]

UPSTREAM_FILES = (
    "server.py",
    "schemas.py",
    "client.py",
    "sandbox.py",
    "tests/test_operations.py",
    "tests/test_errors.py",
    "tests/test_sandbox.py",
)
LOCAL_FILES = ("server.py", "tests/test_operations.py", "tests/test_errors.py")

# Files a server may lack for a while, each with its reason; a gap that is filled must leave it.
KNOWN_GAPS: set[tuple[str, str]] = set()


def required_files(*, calls_upstream: bool, stores: bool) -> list[str]:
    files = list(UPSTREAM_FILES if calls_upstream else LOCAL_FILES)
    if stores:
        files.append("models.py")
    return files


def missing_files(package: Path, *, calls_upstream: bool, stores: bool) -> list[str]:
    return [
        f for f in required_files(calls_upstream=calls_upstream, stores=stores) if not (package / f).is_file()
    ]


def _servers():
    for name, server in sorted(get_registry().servers.items()):
        module = type(server).__module__
        if not module.startswith("mcp_servers."):
            continue  # plugins keep their own layout
        package = Path(sys.modules[module].__file__).parent
        app = apps.get_containing_app_config(module)
        yield name, package, app


def test_it_finds_every_file_of_every_server():
    servers = list(_servers())
    assert {name for name, _, _ in servers} >= {"database", "calcom", "retell", "stripe", "sentry"}
    gaps = set()
    for name, package, app in servers:
        stores = bool(list(app.get_models()))
        for missing in missing_files(package, calls_upstream=name in settings.SANDBOX_PORTS, stores=stores):
            gaps.add((name, missing))
    assert sorted(gaps - KNOWN_GAPS) == []
    assert sorted(KNOWN_GAPS - gaps) == [], "filled: remove these from KNOWN_GAPS"


def test_it_names_the_files_a_server_lacks(tmp_path):
    (tmp_path / "tests").mkdir()
    for name in ("server.py", "client.py", "tests/test_operations.py"):
        (tmp_path / name).write_text("")
    assert missing_files(tmp_path, calls_upstream=True, stores=True) == [
        "schemas.py",
        "sandbox.py",
        "tests/test_errors.py",
        "tests/test_sandbox.py",
        "models.py",
    ]
    assert missing_files(tmp_path, calls_upstream=False, stores=False) == ["tests/test_errors.py"]


@pytest.mark.parametrize("provider", sorted(DEFAULT_HANDLERS))
def test_it_has_a_handler_and_a_signing_sandbox_for_every_webhook_provider(provider):
    handler_module = DEFAULT_HANDLERS[provider].rsplit(".", 1)[0]
    assert handler_module == f"mcp_servers.webhooks.handlers.{provider}"
    assert callable(importlib.import_module(f"mcp_servers.{provider}.sandbox").sign_webhook)


def _misnamed_tests(path: Path) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}::{node.name}"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
        and not node.name.startswith("test_it_")
    ]


def test_it_finds_only_tests_named_test_it():
    modules = [
        path
        for folder in ("tests", "mcp_servers", "mcp_core", "dashboard", "askpro")
        for path in sorted((ROOT / folder).rglob("test_*.py"))
    ]
    assert len(modules) > 50
    assert [name for path in modules for name in _misnamed_tests(path)] == []
