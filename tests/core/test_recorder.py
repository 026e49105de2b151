"""Batched recording (mcp_core.recorder): read-only calls over the network transports are
queued and written in batches; nothing is lost, counted twice or written late for a write."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import psycopg
import pytest
from django.conf import settings
from django.db import OperationalError, connection
from django.db.models import Sum
from django.test import override_settings

from mcp_core.api_keys import api_key_authenticate
from mcp_core.audit import audit_fields
from mcp_core.contracts import ErrorCode, MCPRequest
from mcp_core.metrics import record_call, record_calls
from mcp_core.models import AuditEntry, MetricRollup
from mcp_core.pipeline import route
from mcp_core.recorder import flush_recorder, get_recorder
from mcp_core.resilience import with_resilience

pytestmark = pytest.mark.django_db(transaction=True)

QUEUED = override_settings(MCP_AUDIT_FLUSH_MS=600_000)  # the flusher never fires during a test


@pytest.fixture
def principal(alice, alice_key):
    return api_key_authenticate(alice_key)


@pytest.fixture(autouse=True)
def empty_queue():
    yield
    flush_recorder()


def call(principal, operation="get_tenant_stats", params=None, *, service="database", transport="mcp"):
    request = MCPRequest(
        service=service, operation=operation, params=params or {}, principal=principal, transport=transport
    )
    return route(request)


@QUEUED
def test_it_queues_read_only_mcp_calls_and_writes_them_in_one_batch(principal):
    responses = [call(principal) for _ in range(5)]
    responses.append(call(principal, "get_call_stats", {"days": 0}))  # a caller error
    assert [r.success for r in responses] == [True] * 5 + [False]
    assert AuditEntry.objects.count() == 0
    assert get_recorder().pending() == 6

    assert flush_recorder() == 6

    assert get_recorder().pending() == 0
    entries = AuditEntry.objects.filter(request_id__in=[r.metadata["request_id"] for r in responses])
    assert entries.count() == 6
    failed = entries.get(request_id=responses[-1].metadata["request_id"])
    assert (failed.outcome, failed.error_code) == ("error", "validation_error")
    assert failed.tenant_id == principal.tenant_id
    stats = MetricRollup.objects.get(operation="get_tenant_stats")
    assert (stats.calls, stats.caller_errors, stats.service_failures, stats.tenant_id) == (
        5,
        0,
        0,
        principal.tenant_id,
    )
    histogram = sum(getattr(stats, f"b{i}") for i in range(14))
    assert histogram == 5
    assert stats.total_ms == pytest.approx(sum(r.metadata["duration_ms"] for r in responses[:5]), abs=0.05)
    # A caller's mistake is counted as a call and a caller error, not as a service failure.
    refused = MetricRollup.objects.get(operation="get_call_stats")
    assert (refused.calls, refused.caller_errors, refused.not_configured, refused.service_failures) == (
        1,
        1,
        0,
        0,
    )
    assert refused.tenant_id == principal.tenant_id  # refused before resolution, still the key's tenant


@QUEUED
def test_it_adds_a_later_batch_to_the_same_minute_instead_of_replacing_it(principal):
    for _ in range(3):
        call(principal)
    flush_recorder()
    for _ in range(4):
        call(principal)
    flush_recorder()
    assert AuditEntry.objects.count() == 7
    assert MetricRollup.objects.filter(operation="get_tenant_stats").aggregate(n=Sum("calls"))["n"] == 7


@QUEUED
def test_it_writes_a_call_that_can_change_something_before_answering(principal, platform_key):
    admin = api_key_authenticate(platform_key)
    response = call(admin, "replay_event", {"id": 999_999}, service="webhooks")
    assert response.error["code"] == "not_found"
    assert AuditEntry.objects.filter(request_id=response.metadata["request_id"]).exists()
    assert get_recorder().pending() == 0


@QUEUED
@pytest.mark.parametrize("transport", ["internal", "engine", "console", "webhook"])
def test_it_writes_calls_from_inside_the_platform_before_answering(principal, transport):
    response = call(principal, transport=transport)
    assert AuditEntry.objects.filter(request_id=response.metadata["request_id"], transport=transport).exists()
    assert get_recorder().pending() == 0


@override_settings(MCP_AUDIT_FLUSH_MS=0)
def test_it_writes_every_call_before_answering_when_batching_is_off(principal):
    response = call(principal)
    assert AuditEntry.objects.filter(request_id=response.metadata["request_id"]).exists()
    assert MetricRollup.objects.get(operation="get_tenant_stats").calls == 1


@override_settings(MCP_AUDIT_FLUSH_MS=600_000, MCP_AUDIT_MAX_PENDING=2)
def test_it_makes_the_caller_write_its_own_row_when_the_queue_is_full(principal, caplog):
    responses = [call(principal) for _ in range(5)]
    assert [r.message for r in caplog.records if "queue full" in r.message] == [
        "audit queue full (2 rows): calls write their own rows until it drains"
    ]  # once per episode, not once per call
    assert get_recorder().pending() == 2
    assert AuditEntry.objects.count() == 3  # the three calls that found the queue full
    flush_recorder()
    assert set(AuditEntry.objects.values_list("request_id", flat=True)) == {
        r.metadata["request_id"] for r in responses
    }
    assert MetricRollup.objects.filter(operation="get_tenant_stats").aggregate(n=Sum("calls"))["n"] == 5


@override_settings(MCP_AUDIT_FLUSH_MS=50)
def test_it_writes_the_queue_from_the_flusher_thread_without_being_asked(principal):
    responses = [call(principal) for _ in range(10)]
    deadline = time.monotonic() + 10
    while AuditEntry.objects.count() < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert set(AuditEntry.objects.values_list("request_id", flat=True)) == {
        r.metadata["request_id"] for r in responses
    }
    # Summed: the ten calls may straddle a minute boundary (one rollup row per minute).
    assert MetricRollup.objects.filter(operation="get_tenant_stats").aggregate(n=Sum("calls"))["n"] == 10


@QUEUED
def test_it_keeps_a_failed_batch_queued_and_writes_it_on_the_next_attempt(principal):
    for _ in range(4):
        call(principal)
    connection.ensure_connection()
    backend = connection.connection.info.backend_pid
    # The database closes this connection under us, as a restart or failover would.
    with psycopg.connect(_admin_url(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [backend])
    with pytest.raises(OperationalError):
        flush_recorder()
    assert get_recorder().pending() == 4
    assert get_recorder().status()["status"] == "degraded"
    report = with_resilience({"status": "healthy"})  # what /api/v1/mcp/health and the dashboard show
    assert (report["status"], report["audit_queue"]["pending"]) == ("degraded", 4)
    connection.close()  # the broken connection goes; the next attempt opens a new one
    assert AuditEntry.objects.count() == 0

    assert flush_recorder() == 4
    assert get_recorder().status() | {"flush_ms": None} == {
        "status": "healthy", "batched": True, "flush_ms": None, "pending": 0, "max_pending": 10_000,
        "detail": "writing",
    }  # fmt: skip
    assert AuditEntry.objects.count() == 4
    assert MetricRollup.objects.get(operation="get_tenant_stats").calls == 4


def _admin_url() -> str:
    settings = connection.settings_dict
    return f"postgresql://{settings['USER'] or 'postgres'}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/postgres"


@QUEUED
def test_it_does_not_let_a_row_that_cannot_be_stored_hold_up_the_others(principal, caplog):
    good = [call(principal) for _ in range(3)]
    poison = {"request_id": "poison", "params": {"x": object()}}  # no JSON for this
    get_recorder().record(poison, None, batched=True)
    good.append(call(principal))

    assert flush_recorder() == 4
    assert get_recorder().pending() == 0
    stored = set(AuditEntry.objects.values_list("request_id", flat=True))
    assert stored == {r.metadata["request_id"] for r in good}
    assert MetricRollup.objects.get(operation="get_tenant_stats").calls == 4
    assert any("request poison cannot be stored; dropped" in r.getMessage() for r in caplog.records)


@QUEUED
def test_it_stores_text_utf8_cannot_hold_with_a_replacement_character(principal):
    response = call(principal, "search", {"query": "caf\udc80\x00"})
    flush_recorder()
    entry = AuditEntry.objects.get(request_id=response.metadata["request_id"])
    assert entry.params["query"] == "caf?\ufffd"


# Every error code once, and a success: 6 caller errors, 1 not_configured, 4 service failures.
EVERY_ANSWER = [None, *(str(code) for code in ErrorCode)]


@pytest.mark.parametrize("batched", [True, False], ids=["batch statement", "per call"])
def test_it_counts_every_answer_in_its_outcome_class(batched):
    items = [
        (
            audit_fields(
                request_id=f"class-{index}",
                transport="mcp",
                principal_name="system",
                api_key_id=None,
                user_id=None,
                tenant_id=None,
                service="database",
                operation="search",
                params={},
                error_code=code,
                error_message="",
                duration_ms=3.0,
                idempotency_key=None,
            ),
            {
                "service": "database",
                "operation": "search",
                "tenant_id": None,
                "duration_ms": 3.0,
                "error_code": code,
            },
        )
        for index, code in enumerate(EVERY_ANSWER)
    ]
    if batched:
        record_calls(items)
    else:
        for audit, metric in items:
            record_call(audit=audit, metric=metric)
    row = MetricRollup.objects.get(service="database", operation="search")
    assert (row.calls, row.caller_errors, row.not_configured, row.service_failures) == (12, 6, 1, 4)
    # A second write of the same minute adds to every count (the upsert's increments).
    record_calls([item for item in items if item[1]["error_code"] in ("internal_error", "circuit_open")])
    row.refresh_from_db()
    assert (row.calls, row.caller_errors, row.not_configured, row.service_failures) == (14, 6, 1, 6)
    assert AuditEntry.objects.count() == 14


def test_it_records_on_sqlite_too(tmp_path):
    """This module (but the two PostgreSQL-only connection tests) on a real SQLite file, the
    database of `make run`: there a batch is a multi-row INSERT plus one upsert per call."""
    if connection.vendor == "sqlite":
        pytest.fail("the SQLite run must deselect this test")
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'askpro.sqlite3'}",
        "TEST_DATABASE_NAME": str(tmp_path / "test.sqlite3"),
        "CACHE_KEY_PREFIX": f"askpro-recorder-sqlite-{os.getpid()}",
    }
    deselect = "not sqlite_too and not failed_batch_queued and not outage"  # these two end PG backends
    child = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider", "-k", deselect],
        cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    summary = child.stdout.strip().splitlines()[-1]
    assert child.returncode == 0, child.stdout[-4000:]
    assert int(re.search(r"(\d+) passed", summary).group(1)) >= 14, summary


@override_settings(MCP_AUDIT_FLUSH_MS=50)
def test_it_keeps_the_flusher_thread_through_an_outage_and_says_so_once(principal, caplog):
    """The database drops the flusher's connection in the middle of a batch, as a failover would:
    the batch stays queued, the outage is logged once and the recovery once, every row is stored.
    (Idle pooled connections a failover dropped never fail a batch: they are replaced when taken
    from the pool, askpro/pgbackend; tests/cluster/test_locks_and_pools.py.)"""
    first = [call(principal) for _ in range(3)]
    _wait_for_rows(len(first))
    test_db = _admin_url().rsplit("/", 1)[0] + "/" + connection.settings_dict["NAME"]
    with psycopg.connect(test_db) as holder, psycopg.connect(_admin_url(), autocommit=True) as admin:
        # Hold the audit table so that the flusher's next batch waits on it with its connection...
        holder.execute("LOCK TABLE mcp_core_auditentry IN ACCESS EXCLUSIVE MODE")
        later = [call(principal) for _ in range(5)]

        def flusher_waiting() -> int | None:
            row = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock' "
                "AND pid <> %s",
                [connection.settings_dict["NAME"], holder.info.backend_pid],
            ).fetchone()
            return row[0] if row else None

        deadline = time.monotonic() + 10
        while (pid := flusher_waiting()) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pid is not None, "the flusher never waited on the table"
        # ...then the database drops that connection under it.
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])
        deadline = time.monotonic() + 10
        while not _logged(caplog, "could not write") and time.monotonic() < deadline:
            time.sleep(0.05)
        holder.rollback()  # the lock goes
    _wait_for_rows(len(first) + len(later))
    stored = set(AuditEntry.objects.values_list("request_id", flat=True))
    assert stored == {r.metadata["request_id"] for r in first + later}
    assert _logged(caplog, "could not write") == 1
    deadline = time.monotonic() + 5
    while not _logged(caplog, "writing again") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _logged(caplog, "writing again") == 1


def _logged(caplog, text: str) -> int:
    return sum(1 for r in caplog.records if r.name == "mcp_core.recorder" and text in r.getMessage())


def _wait_for_rows(count: int) -> None:
    deadline = time.monotonic() + 10
    while AuditEntry.objects.count() < count and time.monotonic() < deadline:
        time.sleep(0.05)
