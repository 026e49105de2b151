"""gunicorn's application for bench_observability: the bench settings in the mode named by
BENCH_OBSERVABILITY (observability_modes.py), applied before the handler loads its middleware."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.bench.settings")
django.setup()

from django.core.handlers.wsgi import WSGIHandler  # noqa: E402

from tests.bench.observability_modes import apply  # noqa: E402

apply(os.environ["BENCH_OBSERVABILITY"])
application = WSGIHandler()
