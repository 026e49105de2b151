"""The documentation stays true to the code: docs/configuration.md names every environment
variable the settings read, every registered server has its page docs/servers/<service>.md naming
each of its operations, and the links between README.md, CONTRIBUTING.md and docs/ resolve (files
and #anchors)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIGURATION = ROOT / "docs" / "configuration.md"
# Pages another branch of the same issue writes (issue 13, section 2): links to them are checked
# once the page exists.
PAGES_OF_OTHER_BRANCHES = {"docs/high-availability.md"}
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*$")
READERS = {"env_str", "env_secret", "env_bool", "env_int", "env_float", "env_list", "_upstream"}


def _variables_read(path: Path) -> set[str]:
    """Names passed to the strict readers and to os.environ lookups in one module."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call) or not node.args or not isinstance(node.args[0], ast.Constant):
            continue
        func = node.func
        if (isinstance(func, ast.Name) and func.id in READERS) or (
            isinstance(func, ast.Attribute)
            and func.attr in {"get", "setdefault"}
            and isinstance(func.value, ast.Attribute)
            and func.value.attr == "environ"
        ):
            names.add(node.args[0].value)
    return names


def test_it_lists_every_environment_variable_the_settings_read():
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", CONFIGURATION.read_text()))
    read = (
        _variables_read(ROOT / "askpro" / "settings.py")
        | _variables_read(ROOT / "askpro" / "settings_test.py")
        | _variables_read(ROOT / "mcp_core" / "management" / "commands" / "mcp_stdio.py")
    )
    assert len(read) > 70  # the parser still finds the readers
    assert sorted(read - documented) == []


def test_it_finds_a_variable_missing_from_the_page(tmp_path):
    module = tmp_path / "settings.py"
    module.write_text('X = env_int("ASKPRO_UNDOCUMENTED", 1)\nY = os.environ.get("ALSO_NEW")\n')
    assert _variables_read(module) == {"ASKPRO_UNDOCUMENTED", "ALSO_NEW"}


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    anchors, fenced = set(), False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := HEADING.match(line)):
            anchors.add(_anchor(match.group(1)))
    return anchors


def test_it_resolves_every_link_between_the_pages():
    pages = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").rglob("*.md"))]
    assert ROOT / "docs" / "servers" / "database.md" in pages
    broken = []
    for page in pages:
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            resolved = (page.parent / file_part).resolve() if file_part else page
            if not resolved.exists() and resolved.relative_to(ROOT).as_posix() in PAGES_OF_OTHER_BRANCHES:
                continue
            if not resolved.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []


def _page_problems(service: str, operations: list[str], page: Path, index: str) -> list[str]:
    if not page.exists():
        return [f"{service}: no page docs/servers/{service}.md"]
    named = set(re.findall(r"`(\w+)`", page.read_text()))
    problems = [
        f"{service}: operation {name!r} missing from its page" for name in operations if name not in named
    ]
    if f"(servers/{service}.md)" not in index:
        problems.append(f"{service}: not linked from docs/servers.md")
    return problems


def test_it_has_a_page_for_every_registered_server_naming_its_operations():
    from mcp_core.registry import DYNAMIC_PREFIX, get_registry

    index = (ROOT / "docs" / "servers.md").read_text()
    servers = {
        name: sorted(server.operations)
        for name, server in get_registry().servers.items()
        # Plugins document themselves; services derived at run time (fed_*) are an operator's
        # registrations, documented by the federation server's page.
        if type(server).__module__.startswith("mcp_servers.") and not name.startswith(DYNAMIC_PREFIX)
    }
    assert len(servers) >= 8
    problems = [
        problem
        for name, operations in sorted(servers.items())
        for problem in _page_problems(name, operations, ROOT / "docs" / "servers" / f"{name}.md", index)
    ]
    assert problems == []


def test_it_names_a_missing_page_and_a_missing_operation(tmp_path):
    page = tmp_path / "billing.md"
    assert _page_problems("billing", ["charge"], page, "") == ["billing: no page docs/servers/billing.md"]
    page.write_text("| `refund` | `billing:admin` |")
    assert _page_problems("billing", ["charge", "refund"], page, "[x](servers/billing.md)") == [
        "billing: operation 'charge' missing from its page"
    ]
