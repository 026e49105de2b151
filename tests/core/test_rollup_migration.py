"""The migration to outcome classes splits existing rollups by what the audit log still knows,
and leaves the rows it cannot explain as they were."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta as td
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from dashboard.models import MetricHourly
from mcp_core.models import MetricRollup

OLD = [("mcp_core", "0004_health_runs"), ("dashboard", "0002_health_results_in_mcp_core")]
COUNTS = ("calls", "caller_errors", "not_configured", "service_failures")


def figures(row) -> tuple[int, ...]:
    return tuple(getattr(row, name) for name in COUNTS)


@pytest.mark.django_db(transaction=True)
def test_it_splits_old_rollups_by_what_the_audit_log_knows(alice):
    executor = MigrationExecutor(connection)
    executor.migrate(OLD)
    old = executor.loader.project_state(OLD).apps
    Rollup, Hourly = old.get_model("mcp_core", "MetricRollup"), old.get_model("dashboard", "MetricHourly")
    Audit = old.get_model("mcp_core", "AuditEntry")
    minute = (timezone.now() - td(hours=3)).replace(second=0, microsecond=0)
    hour = minute.replace(minute=0)
    key = {"service": "calcom", "operation": "get_slots"}
    # What the old recorder wrote: errors counted not_configured too, and a call refused before
    # its tenant was resolved went to tenant 0 although its audit row names the key's tenant.
    Rollup.objects.create(minute=minute, tenant_id=alice.pk, calls=10, errors=3, **key)
    Rollup.objects.create(minute=minute, tenant_id=0, calls=4, errors=0, **key)
    Rollup.objects.create(minute=minute - td(days=30), tenant_id=alice.pk, calls=5, errors=5, **key)
    Hourly.objects.create(hour=hour, tenant_id=alice.pk, calls=10, errors=3, **key)
    Hourly.objects.create(hour=hour, tenant_id=0, calls=4, errors=0, **key)
    codes = (
        ["not_configured"] * 2 + ["upstream_error", "not_found"] + ["forbidden"] * 3 + ["validation_error"]
    )
    for index, code in enumerate(codes):
        Audit.objects.create(
            created_at=minute + td(seconds=index),
            request_id=f"old-{index}",
            principal="key:old",
            tenant_id=alice.pk,
            outcome="error",
            error_code=code,
            duration_ms=1.0,
            **key,
        )

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    rows = {(r.minute, r.tenant_id): r for r in MetricRollup.objects.filter(**key)}
    assert figures(rows[(minute, alice.pk)]) == (10, 1, 2, 1)  # not_found; 2 not_configured; upstream
    assert figures(rows[(minute, 0)]) == (4, 4, 0, 0)  # forbidden x3, validation_error
    # Thirty days ago the audit log has nothing left to say: the old figure stays.
    assert figures(rows[(minute - td(days=30), alice.pk)]) == (5, 0, 0, 5)
    hourly = {r.tenant_id: r for r in MetricHourly.objects.filter(hour=hour, **key)}
    assert figures(hourly[alice.pk]) == (10, 1, 2, 1)
    assert figures(hourly[0]) == (4, 4, 0, 0)


def test_it_migrates_and_counts_on_sqlite_too(tmp_path):
    """This module and the outcome-class scenarios on a real SQLite file, `make run`'s database."""
    if connection.vendor == "sqlite":
        pytest.fail("the SQLite run must deselect this test")
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'askpro.sqlite3'}",
        "TEST_DATABASE_NAME": str(tmp_path / "test.sqlite3"),
        "CACHE_KEY_PREFIX": f"askpro-outcomes-sqlite-{os.getpid()}",
    }
    modules = [__file__, str(Path(__file__).with_name("test_outcome_classes.py"))]
    child = subprocess.run(
        [sys.executable, "-m", "pytest", *modules, "-q", "-p", "no:cacheprovider", "-k", "not sqlite_too"],
        cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    summary = child.stdout.strip().splitlines()[-1]
    assert child.returncode == 0, child.stdout[-4000:]
    assert int(re.search(r"(\d+) passed", summary).group(1)) == 5, summary
