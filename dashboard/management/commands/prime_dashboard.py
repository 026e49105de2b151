"""Run the first health check and the first improvements analysis, so that the dashboard shows
data on its first visit (`make run` calls this before serving)."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand

from dashboard.engine import improvements_run
from dashboard.models import ImprovementRun
from dashboard.services import health_checks_run
from mcp_core.models import HealthRun


class Command(BaseCommand):
    help = "Run every health check and every improvements analyzer once, so the dashboard has data."

    def handle(self, *args, **options) -> None:
        failed = False
        try:
            snapshot = health_checks_run(trigger=HealthRun.Trigger.STARTUP)
        except Exception as exc:  # noqa: BLE001 - report it and still try the analysis
            failed = True
            self.stderr.write(self.style.ERROR(f"health check failed: {type(exc).__name__}: {exc}"))
        else:
            counts: dict[str, int] = {}
            for result in snapshot.services.values():
                counts[str(result.status)] = counts.get(str(result.status), 0) + 1
            spread = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no servers"
            self.stdout.write(f"health: {snapshot.status} ({spread}; {snapshot.source})")
        try:
            run = improvements_run(trigger=ImprovementRun.Trigger.COMMAND)
        except Exception as exc:  # noqa: BLE001
            failed = True
            self.stderr.write(self.style.ERROR(f"improvements analysis failed: {type(exc).__name__}: {exc}"))
        else:
            self.stdout.write(
                f"improvements: {run.findings} finding(s), {run.created} new, "
                f"{len(run.errors)} analyzer error(s) in {run.duration_ms:.0f} ms"
            )
        if failed:
            sys.exit(1)
