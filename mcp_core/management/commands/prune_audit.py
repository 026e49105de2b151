from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mcp_core.audit import audit_prune


class Command(BaseCommand):
    help = "Delete audit entries older than --days (retention; entries are never edited)."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=settings.MCP_AUDIT_RETENTION_DAYS)

    def handle(self, *args, **options):
        if options["days"] < 1:
            raise CommandError("--days: must be at least 1")
        deleted = audit_prune(days=options["days"])
        self.stdout.write(f"Deleted {deleted} audit entries older than {options['days']} days.")
