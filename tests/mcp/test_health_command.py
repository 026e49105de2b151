"""`manage.py mcp_health_check`: the table, the JSON and the exit codes in-process; the exit
code and the timeout bound of a hung check also as a real process (only honest that way)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings

from tests.mcp.conftest import ROOT, child_env
from tests.mcp.health_servers import paths

pytestmark = [pytest.mark.django_db]


def command(servers: list[str], *args: str) -> tuple[int, str, str]:
    """Run the command in-process: (exit code, stdout, stderr)."""
    out, err = StringIO(), StringIO()
    with override_settings(MCP_SERVERS=servers):
        from mcp_core.registry import reset_registry_for_tests

        reset_registry_for_tests()
        try:
            call_command("mcp_health_check", *args, stdout=out, stderr=err)
            code = 0
        except SystemExit as exc:
            code = exc.code
        finally:
            reset_registry_for_tests()
    return code, out.getvalue(), err.getvalue()


def run(servers: list[str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "mcp_health_check", *args],
        cwd=ROOT,
        env=child_env(MCP_SERVERS=",".join(servers)),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_it_prints_a_table_and_exits_0_when_all_is_healthy():
    code, out, err = command(paths("Fine", "Unconfigured"))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["SERVICE", "STATUS", "LATENCY", "DETAIL"]
    assert lines[1].split()[:2] == ["fine", "healthy"]
    assert lines[2].split()[:2] == ["unconfigured", "not_configured"]  # not a fault
    assert lines[-1].startswith("overall: healthy")


def test_it_prints_json_and_exits_with_the_worst_status():
    code, out, _ = command(paths("Fine", "Slowish", "Broken"), "--json")
    assert code == 2
    report = json.loads(out)
    assert set(report) == {"status", "checked_at", "services"}
    assert report["status"] == "unhealthy"
    assert report["services"]["slowish"] == {
        "status": "degraded",
        "latency_ms": report["services"]["slowish"]["latency_ms"],
        "detail": "p99 above 2s",
    }
    assert report["services"]["broken"]["status"] == "unhealthy"
    assert "ConnectionRefusedError" in report["services"]["broken"]["detail"]
    code, out, _ = command(paths("Fine", "Slowish"), "--json")
    assert code == 1
    assert json.loads(out)["status"] == "degraded"


def test_it_checks_one_service_and_says_unknown_for_a_name_it_does_not_know():
    code, out, _ = command(paths("Fine", "Broken"), "--json", "--service", "fine")
    assert code == 0
    assert list(json.loads(out)["services"]) == ["fine"]
    code, out, err = command(paths("Fine"), "--service", "nope")
    assert code == 3
    assert "no MCP server named 'nope'" in err
    assert out == ""


@pytest.mark.slow
def test_it_does_not_hang_past_its_timeout_on_a_hung_check():
    started = time.monotonic()
    result = run(paths("Fine", "Hung"), "--json", "--timeout", "1", timeout=110)
    elapsed = time.monotonic() - started
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert report["services"]["hung"]["status"] == "unhealthy"
    assert "timed out after 1s" in report["services"]["hung"]["detail"]
    assert report["services"]["fine"]["status"] == "healthy"
    # The check sleeps 120 s; the command must leave about 1 s in. The bound is loose because
    # Django's start-up alone can take many seconds on a loaded 2-core machine.
    assert elapsed < 60


@pytest.mark.slow
def test_it_exits_with_the_status_code_and_rejects_a_bad_timeout_as_a_process():
    result = run(paths("Fine", "Slowish"))
    assert result.returncode == 1
    assert "overall: degraded" in result.stdout
    result = run(paths("Fine"), "--timeout", "soon")
    assert result.returncode != 0
    assert "--timeout" in result.stderr
