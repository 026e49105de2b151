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

from mcp_core.models import HealthRun
from tests.mcp.conftest import ROOT, child_env
from tests.mcp.health_servers import PingSandbox, paths

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
    assert set(report) == {
        "status",
        "checked_at",
        "age_seconds",
        "source",
        "run_in_progress",
        "services",
        "platform",
    }
    assert report["source"] == "live"
    assert report["platform"]["database"]["status"] == "healthy"
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
    report = json.loads(out)
    assert list(report["services"]) == ["fine"]
    assert report["status"] == "healthy" and report["platform"] == {}
    code, out, err = command(paths("Fine"), "--service", "nope")
    assert code == 3
    assert "no MCP server named 'nope'" in err
    assert out == ""


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)  # the child stores its run: flushed after
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
@pytest.mark.django_db(transaction=True)  # the child stores its run: flushed after
def test_it_exits_with_the_status_code_and_rejects_a_bad_timeout_as_a_process():
    result = run(paths("Fine", "Slowish"))
    assert result.returncode == 1
    assert "overall: degraded" in result.stdout
    result = run(paths("Fine"), "--timeout", "soon")
    assert result.returncode != 0
    assert "--timeout" in result.stderr


def test_it_stores_its_run_and_reports_a_fresh_one_instead_of_running_again():
    with override_settings(MCP_HEALTH_REUSE_SECONDS=60):
        code, out, _ = command(paths("Fine", "Slowish"), "--json")
        assert (code, json.loads(out)["source"]) == (1, "live")
        code, out, _ = command(paths("Fine", "Slowish"))
    assert code == 1
    assert "stored run" in out.splitlines()[-1]
    run = HealthRun.objects.get()
    assert (run.trigger, run.status) == ("command", "degraded")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_runs_the_checks_once_for_two_monitors_at_once_as_processes():
    with PingSandbox() as upstream:
        # Slow enough that the second process (Django start-up alone takes seconds here) arrives
        # while the first one's run is under way or within the reuse window.
        upstream.inject_fault(delay=2, path="^/health$")
        env = {"PINGED_UPSTREAM_URL": upstream.url, "MCP_HEALTH_REUSE_SECONDS": "120"}
        servers = paths("Fine", "Pinged")
        monitors = [
            subprocess.Popen(
                [sys.executable, "manage.py", "mcp_health_check", "--json", "--timeout", "20"],
                cwd=ROOT,
                env=child_env(MCP_SERVERS=",".join(servers), **env),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [monitor.communicate(timeout=110) for monitor in monitors]
        assert len(upstream.requests_to("^/health$")) == 1
    reports = [json.loads(out) for out, _ in outputs]
    assert sorted(r["source"] for r in reports) == ["live", "stored"]
    live = next(r for r in reports if r["source"] == "live")
    assert live["services"]["pinged"]["status"] == "healthy"
    assert HealthRun.objects.count() == 1
