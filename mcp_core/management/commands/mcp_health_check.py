"""Check every registered MCP server's health, for humans (a table) or monitors (JSON, exit code).

The checks run through the coalesced service (mcp_core.health.run_checks_coalesced), so
monitors on many machines calling this at once start one run; a run younger than
MCP_HEALTH_REUSE_SECONDS, or the stored one while another is under way, is reported instead
("source": "stored"). Exit codes follow the monitoring-plugin (Nagios) convention: 0 healthy,
1 degraded, 2 unhealthy, 3 unknown (the check could not run, e.g. an unknown --service, or
no run was ever stored and one is under way elsewhere).
"""

from __future__ import annotations

import json
import os
import sys

from django.core.management.base import BaseCommand, CommandParser

from mcp_core.health import UNKNOWN, HealthStatus, run_checks_coalesced
from mcp_core.models import HealthRun
from mcp_core.registry import RegistryError, get_registry

EXIT_CODES = {
    HealthStatus.HEALTHY: 0,
    HealthStatus.NOT_CONFIGURED: 0,
    HealthStatus.DEGRADED: 1,
    HealthStatus.UNHEALTHY: 2,
}
EXIT_UNKNOWN = 3


def _timeout(value: str) -> float:
    import argparse

    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 0.1 <= seconds <= 300:
        raise argparse.ArgumentTypeError("must be between 0.1 and 300 seconds")
    return seconds


def format_table(report: dict) -> str:
    rows = [("SERVICE", "STATUS", "LATENCY", "DETAIL")]
    named = [(name, r) for name, r in report["services"].items()]
    named += [(f"({name})", r) for name, r in report.get("platform", {}).items()]
    for name, result in named:
        latency = "-" if result["latency_ms"] is None else f"{result['latency_ms']:.0f} ms"
        rows.append((name, result["status"], latency, result["detail"]))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]}".rstrip()
        for row in rows
    ]
    lines.append("")
    when = report["checked_at"] or "never"
    how = "checked now" if report["source"] == "live" else "stored run"
    if report["run_in_progress"]:
        how += "; another run is under way"
    lines.append(f"overall: {report['status']}  (checked at {when}, {how})")
    return "\n".join(lines)


class Command(BaseCommand):
    help = (
        "Run every MCP server's health check concurrently, each under its own timeout. "
        "Exit code: 0 healthy, 1 degraded, 2 unhealthy, 3 unknown."
    )
    requires_system_checks = []  # a monitor must get an answer even when a check would fail

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print JSON instead of a table")
        parser.add_argument("--service", help="Check only this server (by name)")
        parser.add_argument(
            "--timeout", type=_timeout, default=5.0, help="Seconds each check may take (default 5)"
        )

    def run_from_argv(self, argv):
        # A hung check's thread cannot be killed, and the interpreter joins pool threads at
        # exit; leave with os._exit so that the timeout really bounds the command.
        try:
            super().run_from_argv(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else EXIT_UNKNOWN
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    def handle(self, *args, **options) -> None:
        try:
            servers = dict(get_registry().servers)
        except RegistryError as exc:
            self.stderr.write(f"UNKNOWN: the MCP registry is invalid: {exc}")
            sys.exit(EXIT_UNKNOWN)
        name = options["service"]
        if name and name not in servers:
            known = ", ".join(sorted(servers)) or "none"
            self.stderr.write(f"UNKNOWN: no MCP server named {name!r} (known: {known})")
            sys.exit(EXIT_UNKNOWN)
        snapshot = run_checks_coalesced(trigger=HealthRun.Trigger.COMMAND, timeout=options["timeout"])
        report = snapshot.report()
        if name:
            # One run answers for every server; --service narrows the report and the exit code.
            report["services"] = {name: report["services"][name]} if name in report["services"] else {}
            report["platform"] = {}
            report["status"] = report["services"][name]["status"] if report["services"] else UNKNOWN
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
        else:
            self.stdout.write(format_table(report))
        if report["status"] == UNKNOWN:
            sys.exit(EXIT_UNKNOWN)
        code = EXIT_CODES[HealthStatus(report["status"])]
        if code:
            sys.exit(code)
