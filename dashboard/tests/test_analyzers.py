"""Each analyzer on data built to trigger it, and on data built not to."""

from __future__ import annotations

from datetime import timedelta as td
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from askpro.models import Appointment, Branch, Call, Plan
from dashboard.engine.analyzers import business, database, metrics, operations
from dashboard.engine.base import AnalysisContext
from dashboard.rollups import compact_hourly

from .factories import audit, record_calls

pytestmark = pytest.mark.django_db


def ctx():
    return AnalysisContext(now=timezone.now())


# --- slow operations ---
def test_it_reports_an_operation_whose_p95_is_over_the_threshold():
    now = timezone.now()
    record_calls(service="database", operation="search", minute=now, durations_ms=[40] * 10 + [2400] * 20)
    findings = metrics.SlowOperations().analyze(ctx())
    assert [f.fingerprint for f in findings] == ["database.search"]
    assert findings[0].evidence["calls"] == 30
    assert findings[0].evidence["p95_ms"] > 1000


def test_it_leaves_fast_operations_and_tiny_samples_alone():
    now = timezone.now()
    record_calls(service="database", operation="search", minute=now, durations_ms=[40] * 200 + [3000] * 5)
    record_calls(service="database", operation="query", minute=now, durations_ms=[5000] * 5)  # 5 < min_calls
    assert metrics.SlowOperations().analyze(ctx()) == []


# --- error-rate rise ---
def _baseline(service: str, *, error_share: float, hours: int = 6) -> None:
    now = timezone.now()
    for h in range(2, 2 + hours):
        record_calls(
            service=service,
            operation="op",
            minute=now - td(hours=h),
            durations_ms=[20] * 100,
            service_failures=int(100 * error_share),
        )


def test_it_reports_an_error_rate_rise_against_the_previous_day():
    _baseline("calcom", error_share=0.01)
    compact_hourly()  # the previous period is read from the hourly compaction
    record_calls(
        service="calcom", operation="op", minute=timezone.now(), durations_ms=[20] * 50, service_failures=20
    )
    findings = metrics.ErrorRateRise().analyze(ctx())
    assert [f.fingerprint for f in findings] == ["calcom"]
    assert findings[0].evidence["service_failure_rate"] == 0.4
    assert findings[0].evidence["previous_service_failure_rate"] == 0.01
    assert findings[0].severity == "high"


def test_it_does_not_report_a_service_that_always_fails_this_much():
    _baseline("calcom", error_share=0.4)
    record_calls(
        service="calcom", operation="op", minute=timezone.now(), durations_ms=[20] * 50, service_failures=20
    )
    assert metrics.ErrorRateRise().analyze(ctx()) == []


def test_it_names_the_code_most_failures_carry_and_the_figures_beside_the_rate():
    now = timezone.now()
    record_calls(
        service="retell",
        operation="list_calls",
        minute=now,
        durations_ms=[20] * 50,
        service_failures=12,
        caller_errors=5,
        not_configured=3,
    )
    for code in ["upstream_error"] * 9 + ["timeout"] * 3:
        audit(service="retell", operation="list_calls", error_code=code)
    audit(service="retell", operation="list_calls", error_code="forbidden")  # not a failure
    [finding] = metrics.ErrorRateRise().analyze(ctx())
    assert (
        finding.title
        == "retell: service failures 24.0% of calls in the last hour (before: 0.0%), mostly upstream_error"
    )
    assert finding.evidence["failures_by_code"] == {"upstream_error": 9, "timeout": 3}
    assert (finding.evidence["caller_errors"], finding.evidence["not_configured"]) == (5, 3)
    assert "upstream_error" in finding.suggested_action


def test_it_never_counts_caller_errors_or_not_configured_as_a_failure_rise():
    record_calls(
        service="calcom",
        operation="op",
        minute=timezone.now(),
        durations_ms=[20] * 100,
        caller_errors=45,
        not_configured=50,
    )
    assert metrics.ErrorRateRise().analyze(ctx()) == []


# --- not configured ---
def test_it_leaves_a_few_not_configured_answers_alone():
    record_calls(
        service="sentry",
        operation="list_issues",
        minute=timezone.now(),
        durations_ms=[1] * 4,
        not_configured=4,
    )
    assert metrics.NotConfiguredCalls().analyze(ctx()) == []


# --- caller errors ---
def test_it_leaves_rate_limit_refusals_to_the_rate_limit_analyzer(alice):
    record_calls(
        service="database", operation="search", minute=timezone.now(), durations_ms=[5] * 40, caller_errors=30
    )
    for _ in range(30):
        audit(service="database", operation="search", error_code="rate_limited", tenant_id=alice.pk)
    assert metrics.CallerErrorRate().analyze(ctx()) == []


def test_it_leaves_an_operation_with_a_few_caller_errors_among_many_calls_alone():
    record_calls(
        service="database",
        operation="search",
        minute=timezone.now(),
        durations_ms=[5] * 200,
        caller_errors=30,
    )
    for _ in range(30):
        audit(service="database", operation="search", error_code="validation_error")
    assert metrics.CallerErrorRate().analyze(ctx()) == []


def test_it_reports_an_operation_refusing_most_of_its_calls_with_the_codes():
    record_calls(
        service="database", operation="query", minute=timezone.now(), durations_ms=[5] * 40, caller_errors=30
    )
    for _ in range(30):
        audit(service="database", operation="query", error_code="validation_error", message="sql: bad")
    [finding] = metrics.CallerErrorRate().analyze(ctx())
    assert (finding.fingerprint, finding.severity) == ("database.query", "medium")
    assert finding.evidence["by_code"] == {"validation_error": 30}
    assert finding.evidence["by_principal"] == [{"principal": "system", "errors": 30}]
    assert "schema" in finding.suggested_action


# --- breakers ---
def test_it_reports_a_breaker_that_keeps_opening():
    from mcp_core.models import BreakerTransition

    for _ in range(3):
        BreakerTransition.objects.create(service="retell", from_state="closed", to_state="open", reason="x")
        BreakerTransition.objects.create(
            service="retell", from_state="open", to_state="half_open", reason="x"
        )
        BreakerTransition.objects.create(
            service="retell", from_state="half_open", to_state="closed", reason="x"
        )
    findings = metrics.BreakerFlapping().analyze(ctx())
    assert [(f.fingerprint, f.evidence["opens"], f.evidence["transitions"]) for f in findings] == [
        ("retell", 3, 9)
    ]


def test_it_does_not_call_one_opening_or_an_old_one_flapping():
    from mcp_core.models import BreakerTransition

    BreakerTransition.objects.create(service="retell", from_state="closed", to_state="open", reason="x")
    for _ in range(3):
        BreakerTransition.objects.create(
            service="calcom",
            from_state="closed",
            to_state="open",
            reason="x",
            at=timezone.now() - td(hours=3),
        )
    assert metrics.BreakerFlapping().analyze(ctx()) == []


# --- rate limits ---
def test_it_reports_a_tenant_refused_by_the_rate_limiter(alice):
    for _ in range(12):
        audit(service="database", operation="search", error_code="rate_limited", tenant_id=alice.pk)
    findings = metrics.RateLimitSaturation().analyze(ctx())
    assert [f.fingerprint for f in findings] == [f"{alice.pk}:database"]
    assert findings[0].evidence["refused"] == 12
    assert findings[0].severity == "high"


def test_it_reports_a_tenant_running_at_its_plan_limit(alice):
    plan = Plan.objects.create(code="small", name="Small", requests_per_minute=50)
    alice.plan = plan
    alice.save()
    record_calls(
        service="database",
        operation="search",
        minute=timezone.now(),
        durations_ms=[5] * 48,
        tenant_id=alice.pk,
    )
    findings = metrics.RateLimitSaturation().analyze(ctx())
    assert [f.evidence["peak_calls_per_minute"] for f in findings] == [48]
    assert findings[0].evidence["limit_per_minute"] == 50


def test_it_leaves_tenants_well_under_their_limit_alone(alice, bob):
    record_calls(
        service="database",
        operation="search",
        minute=timezone.now(),
        durations_ms=[5] * 40,
        tenant_id=alice.pk,
    )
    for _ in range(3):
        audit(service="database", operation="search", error_code="rate_limited", tenant_id=bob.pk)
    assert metrics.RateLimitSaturation().analyze(ctx()) == []


# --- queue and webhooks ---
def test_it_says_the_queue_analyzer_cannot_run_without_a_broker():
    # Tests run Celery eagerly: there is no queue to measure, and the analyzer must say so.
    assert "eager" in operations.QueueBacklog().unavailable()


def _webhook(status: str, n: int) -> None:
    from mcp_servers.webhooks.models import WebhookEvent

    for i in range(n):
        WebhookEvent.objects.create(
            provider="stripe",
            event_id=f"evt_{status}_{i}",
            idempotency_key=f"{status}-{i}",
            type="invoice.paid",
            payload={},
            status=status,
            last_error="boom" if status == "failed" else "",
        )


def test_it_reports_failed_webhooks_piling_up():
    _webhook("failed", 11)
    findings = operations.WebhookFailures().analyze(ctx())
    assert len(findings) == 1
    assert findings[0].evidence["failed"] == 11


def test_it_does_not_report_a_few_failed_webhooks():
    _webhook("failed", 3)
    _webhook("processed", 30)
    assert operations.WebhookFailures().analyze(ctx()) == []


# --- slow queries (own timings: pg_stat_statements is not preloaded on this server) ---
def test_it_reports_slow_queries_from_the_database_servers_own_timings():
    for ms in (900, 1200, 800):
        audit(
            service="database",
            operation="query",
            duration_ms=ms,
            params={"sql": "SELECT * FROM askpro_call WHERE id = 7"},
        )
    audit(service="database", operation="query", duration_ms=5, params={"sql": "SELECT 1"})
    analyzer = database.SlowQueries()
    assert not analyzer.statements_available()  # this server does not preload pg_stat_statements
    findings = analyzer.analyze(ctx())
    assert len(findings) == 1
    assert findings[0].evidence["calls"] == 3
    assert findings[0].evidence["mean_ms"] == pytest.approx(966.7, abs=0.1)
    assert findings[0].evidence["source"].startswith("audit")


def test_it_does_not_report_fast_or_rare_queries():
    audit(service="database", operation="query", duration_ms=30, params={"sql": "SELECT 2"})
    audit(service="database", operation="query", duration_ms=3000, params={"sql": "SELECT 3"})
    assert database.SlowQueries().analyze(ctx()) == []


# --- missing indexes ---
def test_it_reports_a_tenant_key_and_a_filter_column_without_index(settings):
    settings.IMPROVEMENT_THRESHOLDS = {"missing_indexes": {"min_rows": 0}}
    with connection.cursor() as cursor:
        # DDL is transactional in PostgreSQL: the test's rollback puts these indexes back.
        for name, _ in _indexes_on("askpro_phonenumber", "company_id"):
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute('DROP INDEX "call_company_started"')
    fingerprints = {f.fingerprint: f for f in database.MissingIndexes().analyze(ctx())}
    assert "column:askpro_phonenumber.company_id" in fingerprints
    assert fingerprints["column:askpro_phonenumber.company_id"].severity == "high"
    started = fingerprints["column:askpro_call.started_at"]
    assert "CREATE INDEX CONCURRENTLY" in started.suggested_action
    assert "(company_id, started_at)" in started.suggested_action


def test_it_finds_those_columns_covered_when_the_indexes_exist(settings):
    settings.IMPROVEMENT_THRESHOLDS = {"missing_indexes": {"min_rows": 0}}
    fingerprints = {f.fingerprint for f in database.MissingIndexes().analyze(ctx())}
    assert "column:askpro_phonenumber.company_id" not in fingerprints
    assert "column:askpro_call.started_at" not in fingerprints


def test_it_ignores_small_tables_by_default():
    assert database.MissingIndexes().analyze(ctx()) == []


def _indexes_on(table: str, column: str) -> list[tuple[str, list[str]]]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    return [
        (name, info["columns"])
        for name, info in constraints.items()
        if info["index"] and not info["primary_key"] and not info["unique"] and info["columns"][0] == column
    ]


# --- unused indexes ---
def test_it_reports_an_index_never_scanned(settings):
    settings.IMPROVEMENT_THRESHOLDS = {"unused_indexes": {"min_size_bytes": 0}}
    with connection.cursor() as cursor:
        cursor.execute("CREATE INDEX dash_test_unused ON askpro_customer (notes)")
    findings = {f.fingerprint: f for f in database.UnusedIndexes().analyze(ctx())}
    assert "index:dash_test_unused" in findings
    assert "DROP INDEX CONCURRENTLY dash_test_unused" in findings["index:dash_test_unused"].suggested_action


@pytest.mark.django_db(transaction=True)
def test_it_does_not_report_an_index_that_has_been_used(settings):
    settings.IMPROVEMENT_THRESHOLDS = {"unused_indexes": {"min_size_bytes": 0}}
    with connection.cursor() as cursor:
        cursor.execute("CREATE INDEX dash_test_used ON askpro_customer (notes)")
        try:
            cursor.execute("SET enable_seqscan = off")
            cursor.execute("SELECT count(*) FROM askpro_customer WHERE notes = 'x'")
            cursor.execute("RESET enable_seqscan")
            # Statistics are flushed when the backend goes idle (PostgreSQL 15+).
            cursor.execute("SELECT pg_stat_force_next_flush()")
            cursor.execute("SELECT pg_sleep(0.05)")
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            fingerprints = {f.fingerprint for f in database.UnusedIndexes().analyze(ctx())}
            assert "index:dash_test_used" not in fingerprints
        finally:
            cursor.execute("DROP INDEX IF EXISTS dash_test_used")


# --- cache hit rate ---
def test_it_reports_a_redis_hit_ratio_collapse_since_the_previous_run():
    analyzer = database.CacheHitRate()
    analyzer.analyze(ctx())  # the baseline sample
    for i in range(2000):
        cache.get(f"dash-test-missing-{i}")
    findings = {f.fingerprint: f for f in analyzer.analyze(ctx())}
    assert "redis" in findings
    assert findings["redis"].evidence["misses"] >= 2000
    assert findings["redis"].evidence["ratio"] < 0.8


def test_it_does_not_report_a_redis_cache_that_hits():
    analyzer = database.CacheHitRate()
    cache.set("dash-test-present", 1)
    analyzer.analyze(ctx())
    for _ in range(2000):
        cache.get("dash-test-present")
    assert "redis" not in {f.fingerprint for f in analyzer.analyze(ctx())}


# --- business: calls without an appointment ---
def _calls(branch: Branch, *, start, n: int, booked: int) -> None:
    for i in range(n):
        call = Call.objects.create(
            company=branch.company,
            branch=branch,
            started_at=start + td(minutes=i),
            duration_sec=60,
            cost=Decimal("0.1"),
        )
        if i < booked:
            Appointment.objects.create(
                company=branch.company,
                branch=branch,
                call=call,
                starts_at=start + td(days=2),
                ends_at=start + td(days=2, minutes=30),
            )


def test_it_reports_a_branch_whose_calls_stopped_ending_in_appointments(alice):
    branch = alice.branches.get()
    now = timezone.now()
    _calls(branch, start=now - td(days=10), n=30, booked=24)  # 20 % unbooked before
    _calls(branch, start=now - td(days=3), n=30, booked=12)  # 60 % unbooked now
    findings = business.UnbookedCalls().analyze(ctx())
    assert [f.fingerprint for f in findings] == [f"branch:{branch.pk}"]
    evidence = findings[0].evidence
    assert (evidence["calls"], evidence["unbooked"], evidence["previous_unbooked"]) == (
        31,
        18,
        6,
    )  # with the fixture's booked call
    assert findings[0].severity == "high"


def test_it_does_not_report_a_branch_that_books_as_before(alice, bob):
    now = timezone.now()
    branch = alice.branches.get()
    _calls(branch, start=now - td(days=10), n=30, booked=24)
    _calls(branch, start=now - td(days=3), n=30, booked=23)
    # A failed appointment is not a booking: bob's calls are unbooked in both periods alike.
    other = bob.branches.get()
    _calls(other, start=now - td(days=10), n=25, booked=0)
    _calls(other, start=now - td(days=3), n=25, booked=0)
    assert business.UnbookedCalls().analyze(ctx()) == []


# --- breaker stuck half-open, and its self-healing ---
def _half_open(service: str) -> None:
    """Drive the real breaker (Redis) open with failures, then into half-open with one trial call."""
    import time

    from mcp_core import breaker

    cfg = breaker.BreakerConfig(minimum_calls=2, open_duration=0.05, half_open_calls=3)
    backend = breaker._backend()
    for _ in range(2):
        verdict = backend.acquire(service, cfg)
        backend.record(service, cfg, verdict.state, verdict.generation, True, False)
    time.sleep(0.1)
    assert backend.acquire(service, cfg).state == "half_open"


def test_it_reports_a_breaker_left_half_open_while_calls_succeed_and_heals_it_when_enabled(settings):
    from dashboard.engine import ImprovementEngine
    from dashboard.models import Recommendation
    from mcp_core import breaker
    from mcp_core.models import AuditEntry, BreakerTransition

    settings.IMPROVEMENT_THRESHOLDS = {"breaker_half_open": {"min_minutes": 0}}
    try:
        _half_open("database")
        record_calls(service="database", operation="search", minute=timezone.now(), durations_ms=[10] * 8)
        findings = metrics.BreakerStuckHalfOpen().analyze(ctx())
        assert [(f.fingerprint, f.evidence["calls"]) for f in findings] == [("database", 8)]

        settings.IMPROVEMENT_SELF_HEALING = ["breaker_half_open"]
        run = ImprovementEngine([metrics.BreakerStuckHalfOpen()]).run(trigger="test")
        assert run.healed[0]["note"] == "closed the database breaker (was half_open)"
        assert {s["service"]: s["state"] for s in breaker.breaker_states()}["database"] == "closed"
        assert Recommendation.objects.get().status == "applied"
        assert BreakerTransition.objects.filter(service="database", to_state="closed").exists()
        audited = AuditEntry.objects.get(operation="heal_breaker_half_open")
        assert audited.outcome == "success"
    finally:
        breaker._backend().reset("database")


def test_it_leaves_a_half_open_breaker_alone_while_the_service_still_fails(settings):
    from mcp_core import breaker

    settings.IMPROVEMENT_THRESHOLDS = {"breaker_half_open": {"min_minutes": 0}}
    try:
        _half_open("database")
        record_calls(
            service="database",
            operation="search",
            minute=timezone.now(),
            durations_ms=[10] * 8,
            service_failures=3,
        )
        assert metrics.BreakerStuckHalfOpen().analyze(ctx()) == []
    finally:
        breaker._backend().reset("database")


@pytest.fixture
def redis_broker_queue():
    """Point the Celery app at the real Redis broker with a queue of this test's own, and fill it
    the way kombu does (a Redis list named after the queue). Removed afterwards."""
    import os

    import redis

    from askpro.celery import app

    queue = f"dash-test-queue-{os.getpid()}"
    saved = {k: app.conf[k] for k in ("broker_url", "task_always_eager", "task_default_queue")}
    app.conf.update(broker_url="redis://127.0.0.1:6379/0", task_always_eager=False, task_default_queue=queue)
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        yield lambda n: client.lpush(queue, *[b"{}"] * n)
    finally:
        client.delete(queue)
        client.close()
        app.conf.update(saved)


def test_it_reports_a_queue_backlog_over_the_threshold(redis_broker_queue):
    redis_broker_queue(1200)
    analyzer = operations.QueueBacklog()
    assert analyzer.unavailable() is None
    findings = analyzer.analyze(ctx())
    assert [(f.evidence["waiting"], f.severity) for f in findings] == [(1200, "medium")]


def test_it_does_not_report_a_short_queue(redis_broker_queue):
    redis_broker_queue(40)
    assert operations.QueueBacklog().analyze(ctx()) == []
