"""Run the ImprovementEngine now, showing each analyzer as it finishes."""

from django.core.management.base import BaseCommand

from dashboard.engine import improvements_run
from dashboard.models import ImprovementRun


class Command(BaseCommand):
    help = "Run every registered analyzer once and update the recommendations."

    def handle(self, *args, **options):
        def progress(name: str, entry: dict) -> None:
            if entry["error"]:
                state = self.style.ERROR(f"failed: {entry['error']}")
            elif entry["skipped"]:
                state = self.style.WARNING(f"skipped: {entry['skipped']}")
            else:
                state = f"{entry['findings']} finding(s)"
            self.stdout.write(f"[{entry['index']}/{entry['total']}] {name}: {state} ({entry['ms']:.0f} ms)")

        run = improvements_run(trigger=ImprovementRun.Trigger.COMMAND, progress=progress)
        summary = (
            f"run {run.pk}: {run.findings} finding(s), {run.created} new, {run.updated} updated, "
            f"{len(run.errors)} analyzer error(s), {len(run.healed)} healing action(s) in {run.duration_ms:.0f} ms"
        )
        self.stdout.write(self.style.ERROR(summary) if run.errors else self.style.SUCCESS(summary))
