"""The Celery app. Without CELERY_BROKER_URL, tasks run eagerly (see settings)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "askpro.settings")

app = Celery("askpro")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
