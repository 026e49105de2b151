"""`manage.py prime_dashboard` (run by `make run` before serving): the first health check and the
first improvements analysis, so that a newcomer's first visit shows data."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

from dashboard.models import ImprovementRun
from mcp_core.models import HealthRun, ServiceHealth
from mcp_core.registry import get_registry

pytestmark = pytest.mark.django_db


def test_it_fills_the_dashboard_and_the_improvements_page_before_the_first_visit(operator_client):
    page = operator_client.get(reverse("admin:dashboard")).content.decode()
    assert "not checked yet" in page  # what a newcomer saw before

    out = StringIO()
    call_command("prime_dashboard", stdout=out, stderr=StringIO())

    run = HealthRun.objects.get()
    assert run.trigger == "startup"
    assert set(ServiceHealth.objects.values_list("service", flat=True)) == set(get_registry().servers)
    assert ImprovementRun.objects.count() == 1
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(f"health: {run.status} (")
    assert lines[1].startswith("improvements: ")

    page = operator_client.get(reverse("admin:dashboard")).content.decode()
    assert "not checked yet" not in page.lower()
    assert 'data-testid="aggregate">' in page
    page = operator_client.get(reverse("admin:improvements")).content.decode()
    assert "The analysis has not run yet" not in page
    assert "No runs yet" not in page


def test_it_primes_the_dashboard_in_make_run_after_the_sandboxes_and_before_serving():
    script = (Path(__file__).resolve().parents[2] / "scripts" / "run_dev.sh").read_text()
    prime, sandbox, serve = (
        script.index("manage.py prime_dashboard"),
        script.index("manage.py run_sandbox"),
        script.index("manage.py runserver"),
    )
    assert sandbox < prime < serve
