"""Plugin servers: a package that declares an `askpro.mcp_servers` entry point is found by real
importlib.metadata discovery, validated by the system check, and served as MCP tools."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_core.checks import check_registry
from mcp_core.plugins import plugin_server_paths
from mcp_core.registry import get_registry, reset_registry_for_tests
from tests.mcp.helpers import call_tool, list_tools

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

PLUGIN_SOURCE = Path(__file__).resolve().parents[1] / "plugins" / "example_plugin"


@pytest.fixture(scope="module")
def plugin_target(tmp_path_factory) -> Path:
    """pip-install the example plugin into a private target directory (never the shared venv,
    where every other test run would start seeing it)."""
    target = tmp_path_factory.mktemp("plugins")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(PLUGIN_SOURCE),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    return target


@pytest.fixture
def on_path(fresh_registry):
    """Put directories on sys.path for one test, then take them (and their modules) away."""
    added: list[str] = []

    def add(path: Path) -> None:
        sys.path.insert(0, str(path))
        added.append(str(path))
        importlib.invalidate_caches()
        reset_registry_for_tests()

    yield add
    for path in added:
        sys.path.remove(path)
    for module in [m for m in sys.modules if m.startswith(("askpro_example_plugin", "broken_plugin"))]:
        del sys.modules[module]
    importlib.invalidate_caches()


def test_it_discovers_an_installed_plugin_and_serves_its_tools(
    plugin_target, on_path, client, alice, alice_key
):
    assert "askpro_example_plugin.server.ExampleServer" not in plugin_server_paths()
    on_path(plugin_target)
    assert "askpro_example_plugin.server.ExampleServer" in plugin_server_paths()
    assert check_registry(None) == []
    assert "example" in get_registry().servers
    tools = list_tools(client, key=alice_key)
    assert "example_greet" in tools
    assert tools["example_greet"]["annotations"]["readOnlyHint"] is True
    result = call_tool(client, "example_greet", {"name": "Ada"}, key=alice_key)
    assert result["structuredContent"] == {"text": "Hello, Ada!", "tenant": "alice-salon"}
    bad = call_tool(client, "example_greet", {}, key=alice_key)
    assert bad["content"][0]["text"].startswith("validation_error: name: is required")


def test_it_reports_a_broken_plugin_in_the_system_check(tmp_path, on_path):
    dist = tmp_path / "broken_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[askpro.mcp_servers]\nbroken = broken_plugin:NotAServer\n")
    (tmp_path / "broken_plugin.py").write_text("class NotAServer:\n    pass\n")
    on_path(tmp_path)
    errors = check_registry(None)
    assert [error.id for error in errors] == ["mcp.E001"]
    assert "broken_plugin.NotAServer" in errors[0].msg
