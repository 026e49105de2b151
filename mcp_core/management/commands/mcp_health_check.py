"""Check every registered MCP server's health, for humans (a table) or monitors (JSON, exit code).

Exit codes follow the monitoring-plugin (Nagios) convention: 0 healthy, 1 degraded,
2 unhealthy, 3 unknown (the check itself could not run, e.g. an unknown --service).
"""

from __future__ import annotations

import json
import os
import sys

from django.core.management.base import BaseCommand, CommandParser

from mcp_core.health import HealthStatus, health_report
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
    for name, result in report["services"].items():
        latency = "-" if result["latency_ms"] is None else f"{result['latency_ms']:.0f} ms"
        rows.append((name, result["status"], latency, result["detail"]))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]}".rstrip()
        for row in rows
    ]
    lines.append("")
    lines.append(f"overall: {report['status']}  (checked at {report['checked_at']})")
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
        if options["service"]:
            name = options["service"]
            if name not in servers:
                known = ", ".join(sorted(servers)) or "none"
                self.stderr.write(f"UNKNOWN: no MCP server named {name!r} (known: {known})")
                sys.exit(EXIT_UNKNOWN)
            servers = {name: servers[name]}
        report = health_report(list(servers.values()), timeout=options["timeout"])
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
        else:
            self.stdout.write(format_table(report))
        code = EXIT_CODES[HealthStatus(report["status"])]
        if code:
            sys.exit(code)
