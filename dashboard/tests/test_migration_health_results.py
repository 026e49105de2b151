"""dashboard 0002 moves the stored health checks to mcp_core (ServiceHealth) and leaves one
HealthRun, so /health/ has an aggregate before the first run after the upgrade; and back."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [("dashboard", "0001_initial")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_it_moves_the_stored_checks_to_mcp_core_and_back():
    executor = MigrationExecutor(connection)
    latest = [key for key in executor.loader.graph.leaf_nodes() if key[0] in ("dashboard", "mcp_core")]
    try:
        old_apps = _migrate(BEFORE)
        Old = old_apps.get_model("dashboard", "HealthCheckResult")
        checked = timezone.now()
        Old.objects.create(service="database", status="healthy", latency_ms=2.5, checked_at=checked)
        Old.objects.create(service="calcom", status="unhealthy", detail="HTTP 503", checked_at=checked)

        new_apps = _migrate(latest)
        ServiceHealth = new_apps.get_model("mcp_core", "ServiceHealth")
        HealthRun = new_apps.get_model("mcp_core", "HealthRun")
        assert sorted(ServiceHealth.objects.values_list("service", "status", "detail")) == [
            ("calcom", "unhealthy", "HTTP 503"),
            ("database", "healthy", ""),
        ]
        run = HealthRun.objects.get()
        assert (run.status, run.trigger, run.checked_at) == ("unhealthy", "migration", checked)
        assert run.services["database"] == {"status": "healthy", "latency_ms": 2.5, "detail": ""}

        old_apps = _migrate(BEFORE)
        Old = old_apps.get_model("dashboard", "HealthCheckResult")
        assert sorted(Old.objects.values_list("service", "status")) == [
            ("calcom", "unhealthy"),
            ("database", "healthy"),
        ]
    finally:
        _migrate(latest)
