"""Every registered server has the same file set (CONTRIBUTING.md, "The file set of a server"),
and every test of a server is named `test_it_...`.

A server that calls an outside API is one with a sandbox port (settings.SANDBOX_PORTS); the
others are local. A server stores records when its app has models; a server whose provider
sends us webhooks declares them in its own `webhooks.py` (mcp_core.webhooks), and the webhooks
app (one ingestion path: persist first, then a queue) finds them through the registry only.
No server imports another server.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.utils.module_loading import import_string

from mcp_core.registry import get_registry

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


def required_files(*, calls_upstream: bool, stores: bool, receives_webhooks: bool = False) -> list[str]:
    files = list(UPSTREAM_FILES if calls_upstream else LOCAL_FILES)
    if stores:
        files.append("models.py")
    if receives_webhooks:
        files.append("webhooks.py")
    return files


def missing_files(
    package: Path, *, calls_upstream: bool, stores: bool, receives_webhooks: bool = False
) -> list[str]:
    wanted = required_files(calls_upstream=calls_upstream, stores=stores, receives_webhooks=receives_webhooks)
    return [f for f in wanted if not (package / f).is_file()]


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
    receivers = {hook.service for hook in get_registry().webhooks.values()}
    for name, package, app in servers:
        stores = bool(list(app.get_models()))
        for missing in missing_files(
            package,
            calls_upstream=name in settings.SANDBOX_PORTS,
            stores=stores,
            receives_webhooks=name in receivers,
        ):
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
    assert missing_files(tmp_path, calls_upstream=False, stores=False, receives_webhooks=True) == [
        "tests/test_errors.py",
        "webhooks.py",
    ]


WEBHOOK_PROVIDERS = sorted(get_registry().webhooks)


def test_it_finds_the_webhook_providers_of_the_servers_that_receive_them():
    hooks = get_registry().webhooks
    declared = {(provider, hook.service) for provider, hook in hooks.items()}
    assert declared >= {("calcom", "calcom"), ("retell", "retell"), ("stripe", "stripe")}


@pytest.mark.parametrize("provider", WEBHOOK_PROVIDERS)
def test_it_keeps_each_webhook_declaration_in_its_servers_webhooks_py_with_a_signing_sandbox(provider):
    hook = get_registry().webhooks[provider]
    server = get_registry().get_server(hook.service)
    package = type(server).__module__.rsplit(".", 1)[0]
    if not package.startswith("mcp_servers."):
        pytest.skip("plugins keep their own layout")
    assert type(server).webhooks == f"{package}.webhooks"
    assert hook.handle.__module__ == f"{package}.webhooks"
    assert callable(import_string(hook.sandbox_signer))


_DOTTED_SERVER = re.compile(r"mcp_servers\.(\w+)(\.\w+)*")


def imported_servers(path: Path, module: str | None = None) -> set[str]:
    """The server apps a module names: by import (absolute or relative) or by dotted path in a
    string (import_string, settings overrides)."""
    module = module or ".".join(path.relative_to(ROOT).with_suffix("").parts)
    package = module.rsplit(".", 1)[0]  # of pkg/__init__.py too: "pkg.__init__" -> "pkg"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            names = [base] if base != "mcp_servers" else [f"mcp_servers.{a.name}" for a in node.names]
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and _DOTTED_SERVER.fullmatch(node.value)
        ):
            names = [node.value]
        for name in names:
            parts = name.split(".")
            if parts[0] == "mcp_servers" and len(parts) > 1:
                found.add(parts[1])
    return found


def server_imports(package: Path, *, with_tests: bool) -> list[str]:
    """'<file>: <server>' for every other server app a server package names."""
    own = package.name
    return sorted(
        f"{path.relative_to(ROOT)}: {other}"
        for path in sorted(package.rglob("*.py"))
        if with_tests or "tests" not in path.relative_to(package).parts
        for other in imported_servers(path) - {own}
    )


def test_it_finds_no_server_importing_another_server():
    packages = [package for _, package, _ in _servers()]
    assert len(packages) >= 8
    assert [line for package in packages for line in server_imports(package, with_tests=False)] == []


def test_it_finds_the_webhooks_app_and_its_tests_naming_no_other_server():
    """The webhooks app reaches the providers through the registry only (mcp_core.webhooks)."""
    assert server_imports(ROOT / "mcp_servers" / "webhooks", with_tests=True) == []


def test_it_sees_every_way_of_naming_another_server(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import mcp_servers.calcom.client\n"
        "from mcp_servers import stripe\n"
        "from ..retell import webhooks\n"
        "from . import services\n"
        "HANDLER = 'mcp_servers.sentry.sandbox.sign_webhook'\n"
        "DOC = 'see mcp_servers.queue for details'\n"
    )
    assert imported_servers(probe, "mcp_servers.webhooks.probe") == {
        "calcom",
        "stripe",
        "retell",
        "sentry",
        "webhooks",
    }
