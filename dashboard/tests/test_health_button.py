"""The dashboard's "run checks now" button goes through mcp_core's coalesced run: it stores the
results the cards show, and a press moments after another reuses that run and says so."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.test import override_settings
from django.urls import reverse

from dashboard.models import HealthCheckResult
from mcp_core.models import HealthRun, ServiceHealth

pytestmark = pytest.mark.django_db


def test_it_runs_the_checks_once_and_reuses_them_for_a_second_press(operator_client):
    with override_settings(MCP_HEALTH_REUSE_SECONDS=60):
        first = operator_client.post(reverse("admin:dashboard"))
        second = operator_client.post(reverse("admin:dashboard"))
    texts = [str(m) for m in get_messages(first.wsgi_request)] + [
        str(m) for m in get_messages(second.wsgi_request)
    ]
    assert texts[0].startswith("Checked ") and texts[0].endswith("server(s) just now.")
    assert texts[-1].startswith("Showing the check from ") and "(reused)" in texts[-1]
    run = HealthRun.objects.get()
    assert run.trigger == "dashboard"
    # The dashboard's model is a view of mcp_core's: the same rows.
    assert list(HealthCheckResult.objects.values_list("service", "status")) == list(
        ServiceHealth.objects.values_list("service", "status")
    )
    assert HealthCheckResult.objects.count() == len(run.services)
