from django.core.management.base import BaseCommand

from askpro.demo import seed_demo


class Command(BaseCommand):
    help = "Create two demo tenants with a month of calls and appointments (idempotent)."

    def handle(self, *args, **options):
        created = seed_demo()
        self.stdout.write(
            "Demo data ready: " + ", ".join(f"{count} {what} created" for what, count in created.items())
        )
