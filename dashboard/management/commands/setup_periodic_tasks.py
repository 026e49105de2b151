"""Write the periodic tasks defined in code (dashboard.schedule) to django-celery-beat, atomically."""

from django.core.management.base import BaseCommand
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from dashboard.schedule import SCHEDULE


class Command(BaseCommand):
    help = "Create or update the periodic tasks defined in code; disable code-owned ones that were removed."

    def handle(self, *args, **options):
        names = {p.name for p in SCHEDULE}
        tasks = {p.task for p in SCHEDULE}
        with transaction.atomic():
            for p in SCHEDULE:
                crontab, _ = CrontabSchedule.objects.get_or_create(
                    minute=p.minute,
                    hour=p.hour,
                    day_of_week="*",
                    day_of_month="*",
                    month_of_year="*",
                    timezone="UTC",
                )
                _, created = PeriodicTask.objects.update_or_create(
                    name=p.name,
                    defaults={
                        "task": p.task,
                        "crontab": crontab,
                        "interval": None,
                        "enabled": True,
                        "description": p.description,
                    },
                )
                self.stdout.write(
                    f"{'created' if created else 'updated'}: {p.name} ({p.minute} {p.hour} * * *)"
                )
            # Rows for our tasks under names no longer in the code are leftovers: switch them off.
            stale = PeriodicTask.objects.filter(task__in=tasks).exclude(name__in=names)
            for task in stale:
                self.stdout.write(f"disabled stale: {task.name}")
            stale.update(enabled=False)
