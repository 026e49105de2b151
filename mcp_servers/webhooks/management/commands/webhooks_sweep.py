"""Enqueue webhook events whose message was lost or whose worker died (same as the
`webhooks.sweep` task, for cron or a one-off after a broker outage)."""

from django.core.management.base import BaseCommand

from mcp_servers.webhooks.services import webhook_sweep


class Command(BaseCommand):
    help = "Re-enqueue webhook events waiting longer than --grace seconds or with an expired lease."

    def add_arguments(self, parser):
        parser.add_argument(
            "--grace", type=float, default=60.0, help="seconds an event may wait (default 60)"
        )
        parser.add_argument("--limit", type=int, default=500)

    def handle(self, *args, grace: float, limit: int, **options):
        count = webhook_sweep(grace_seconds=grace, limit=limit)
        self.stdout.write(f"enqueued {count} webhook event(s)")
