"""Every setting is declared once, with its default, in askpro/settings.py: code reads it as
`settings.X`, never `getattr(settings, "X", default)` with a second default that can drift."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("askpro", "mcp_core", "mcp_servers", "dashboard")


def _defaulted_reads(path: Path) -> list[int]:
    """Lines of the `getattr(settings, ..., default)` calls in one module."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "getattr"
        and len(node.args) == 3
        and isinstance(node.args[0], ast.Name)
        and node.args[0].id == "settings"
    ]


def _modules():
    for folder in SOURCE_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            # Tests may read settings only they set (override_settings in the test that needs them).
            if "tests" not in path.relative_to(ROOT).parts and path.name != "settings.py":
                yield path


def test_it_reads_no_setting_with_a_default_of_its_own():
    modules = list(_modules())
    assert len(modules) > 100  # the walk still finds the code
    hits = [f"{path.relative_to(ROOT)}:{line}" for path in modules for line in _defaulted_reads(path)]
    assert hits == []


def test_it_finds_a_defaulted_read(tmp_path):
    module = tmp_path / "reader.py"
    module.write_text(
        'x = settings.DECLARED\ny = getattr(settings, "NEW_THING", 3)\nz = getattr(settings, name)\n'
    )
    assert _defaulted_reads(module) == [2]


@pytest.mark.parametrize(
    "name",
    [
        "MCP_RESILIENCE_CACHE",
        "MCP_RESILIENCE_REDIS_RETRY_SECONDS",
        "MCP_RESILIENCE_LOG_INTERVAL",
        "MCP_BREAKERS",
        "MCP_HEALTH_REUSE_SECONDS",
        "MCP_PIPELINE_GUARDS",
        "IMPROVEMENT_ANALYZERS",
        "IMPROVEMENT_THRESHOLDS",
        "IMPROVEMENT_SELF_HEALING",
        "IMPROVEMENT_DISMISS_SNOOZE_DAYS",
        "WEBHOOK_HANDLERS",
        "SENTRY_PROJECT_ID",
    ],
)
def test_it_declares_each_setting_the_code_reads(name):
    from askpro import settings as module

    assert hasattr(module, name)
    assert hasattr(settings, name)
