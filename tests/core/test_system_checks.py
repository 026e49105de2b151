"""The registry's system check: a bad path, a duplicate name, an operation whose schema is
not an object (and the other declaration mistakes) each stop `manage.py check`."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from mcp_core.checks import check_registry

DB = "mcp_servers.database.server.DatabaseServer"
DUMMY = "tests.dummy_server.servers"


def errors_for(paths: list[str]) -> list:
    with override_settings(MCP_SERVERS=paths):
        return check_registry(None)


def ids_and_messages(errors) -> list[tuple[str, str]]:
    return [(e.id, e.msg) for e in errors]


def test_it_passes_a_correct_registry():
    assert errors_for([DB, f"{DUMMY}.EchoServer"]) == []


@pytest.mark.parametrize(
    ("paths", "error_id", "words"),
    [
        ([DB, f"{DUMMY}.NoSuchServer"], "mcp.E001", "cannot be imported"),
        ([DB, "no_such_module.Server"], "mcp.E001", "cannot be imported"),
        ([DB, f"{DUMMY}.NotAServer"], "mcp.E001", "not an MCPServer subclass"),
        ([DB, f"{DUMMY}.BadName"], "mcp.E001", "lower-case identifier"),
        ([DB, f"{DUMMY}.DuplicateDatabaseServer"], "mcp.E001", "registered twice"),
        ([DB, f"{DUMMY}.PlainParamsServer"], "mcp.E003", "params must subclass"),
        ([DB, f"{DUMMY}.ArrayResultServer"], "mcp.E004", "result schema is not an object"),
        ([DB, f"{DUMMY}.UnschemableServer"], "mcp.E004", "params schema fails"),
        ([DB, f"{DUMMY}.WritesWithReadScopeServer"], "mcp.E005", "writes but only needs"),
    ],
)
def test_it_reports_each_registry_mistake(paths, error_id, words):
    errors = errors_for(paths)
    assert errors, f"no error for {paths[-1]}"
    assert any(e.id == error_id and words in e.msg for e in errors), ids_and_messages(errors)
    assert all(e.is_serious() for e in errors)


def test_it_stops_manage_py_check():
    with (
        override_settings(MCP_SERVERS=[DB, f"{DUMMY}.DuplicateDatabaseServer"]),
        pytest.raises(SystemCheckError, match=r"mcp\.E001"),
    ):
        call_command("check")
