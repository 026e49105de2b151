"""Admin pages and the ImprovementEngine at scale (issue 7): server time and query count of each
page, and the engine's run time, on an empty database and then with 1,000,000 calls and
1,000,000 audit rows (plus the rollups they imply), generated with INSERT ... SELECT
generate_series in a throw-away bench database.

The generated rollups are added to whatever the minute already holds (the empty-database
measurements before them make real calls, e.g. the engine's ui_audit calls, whose rows exist):
only the generated audit rows are rolled up, and ON CONFLICT adds instead of failing.

    .venv/bin/python -m tests.bench.bench_admin [--calls 1000000] [--audit 1000000] [--repeat 5]
        [--database NAME]  (a database kept between runs: each run adds its data to the last's)

Targets: each page < 200 ms, the engine < 10 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid

from tests.bench.harness import bench_database, bench_env

TENANTS = 20
OPERATIONS = [
    ("database", "search"),
    ("database", "get_call_stats"),
    ("database", "query"),
    ("calcom", "get_slots"),
    ("calcom", "create_booking"),
    ("retell", "list_calls"),
    ("stripe", "list_invoices"),
    ("webhooks", "list_events"),
]


def _sql(cursor, sql: str, params=None) -> float:
    started = time.perf_counter()
    cursor.execute(sql, params)
    return time.perf_counter() - started


def _codes(kind) -> str:
    from mcp_core.contracts import codes_of

    return ", ".join(f"'{code}'" for code in sorted(codes_of(kind)))


def generate(calls: int, audit_rows: int) -> list[tuple[str, float]]:
    """Bulk data in SQL: tenants and branches by the ORM, the millions by generate_series."""
    from django.db import connection

    from askpro.models import Branch, Company, Plan
    from mcp_core.contracts import OutcomeClass
    from mcp_core.models import AuditEntry

    timings = []
    # get_or_create, and a tag on this run's rows: a kept database holds the runs before.
    run = uuid.uuid4().hex[:8]
    plan, _ = Plan.objects.get_or_create(code="bench", defaults={"name": "Bench", "requests_per_minute": 600})
    companies = [
        Company.objects.get_or_create(slug=f"tenant-{i}", defaults={"name": f"Tenant {i}", "plan": plan})[0]
        for i in range(TENANTS)
    ]
    for company in companies:
        Branch.objects.get_or_create(company=company, slug="main", defaults={"name": "Main"})
        Branch.objects.get_or_create(company=company, slug="north", defaults={"name": "North"})
    ops_values = ", ".join(f"({i}, '{s}', '{o}')" for i, (s, o) in enumerate(OPERATIONS))
    with connection.cursor() as cur:
        timings.append(
            (
                f"{calls:,} calls",
                _sql(
                    cur,
                    """
            INSERT INTO askpro_call (company_id, branch_id, customer_id, retell_call_id, agent_id, from_number,
                to_number, direction, status, disconnection_reason, call_successful, started_at, ended_at,
                duration_sec, cost, transcript, summary, sentiment, analysis, created_at)
            SELECT b.company_id, b.id, NULL, %s || g, '', '+49170' || g, '+4930', 'inbound', 'ended', '',
                   g %% 3 <> 0, now() - (g %% 20160) * interval '1 minute', NULL, 30 + g %% 300, 0.1, '', '', '',
                   '{}'::jsonb, now()
            FROM generate_series(1, %s) g
            JOIN (SELECT id, company_id, row_number() OVER (ORDER BY id) - 1 AS n FROM askpro_branch) b
              ON b.n = g %% (SELECT count(*) FROM askpro_branch)
            """,
                    [f"bench-{run}-", calls],
                ),
            )
        )
        timings.append(
            (
                "appointments for 2 of 3 calls",
                _sql(
                    cur,
                    """
            INSERT INTO askpro_appointment (company_id, branch_id, customer_id, staff_id, service_id, call_id,
                starts_at, ends_at, status, calcom_booking_id, calcom_booking_uid, error_message, notes,
                metadata, created_at, updated_at)
            SELECT company_id, branch_id, NULL, NULL, NULL, id, started_at + interval '2 days',
                   started_at + interval '2 days 30 minutes', 'scheduled', NULL, NULL, '', '', '{}'::jsonb,
                   now(), now()
            FROM askpro_call WHERE call_successful AND retell_call_id LIKE %s
            """,
                    [f"bench-{run}-%"],
                ),
            )
        )
        first_generated = (AuditEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1
        timings.append(
            (
                f"{audit_rows:,} audit rows over 7 days",
                _sql(
                    cur,
                    f"""
            INSERT INTO mcp_core_auditentry (created_at, request_id, transport, principal, api_key_id, user_id,
                tenant_id, service, operation, params, outcome, error_code, error_message, duration_ms,
                idempotency_key)
            SELECT now() - (g %% 604800) * interval '1 second', md5(g::text), 'api', 'key:bench', NULL, NULL,
                   (SELECT min(id) FROM askpro_company) + g %% {TENANTS}, o.service, o.operation,
                   CASE WHEN o.operation = 'query' THEN jsonb_build_object('sql', 'SELECT * FROM askpro_call WHERE id = ' || (g %% 50))
                        ELSE '{{}}'::jsonb END,
                   CASE WHEN c.code = '' THEN 'success' ELSE 'error' END, c.code,
                   CASE WHEN g %% 50 = 0 THEN 'upstream answered 502' ELSE '' END,
                   CASE WHEN o.operation = 'create_booking' THEN 300 + (g %% 1700) ELSE 2 + (g %% 180) END,
                   ''
            FROM generate_series(1, %s) g
            JOIN (VALUES {ops_values}) AS o(n, service, operation) ON o.n = g %% {len(OPERATIONS)}
            -- Each outcome class: upstream errors, rate-limit and validation refusals, and a
            -- Stripe without credentials for some calls.
            CROSS JOIN LATERAL (SELECT CASE WHEN g %% 50 = 0 THEN 'upstream_error'
                                            WHEN g %% 97 = 0 THEN 'rate_limited'
                                            WHEN g %% 61 = 0 THEN 'validation_error'
                                            WHEN o.service = 'stripe' AND g %% 7 = 0 THEN 'not_configured'
                                            ELSE '' END AS code) c
            """,
                    [audit_rows],
                ),
            )
        )
        bounds = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
        columns = [f"b{i}" for i in range(len(bounds) + 1)]
        added = ["calls", "caller_errors", "not_configured", "service_failures", "total_ms", *columns]
        lower = [0, *bounds]
        buckets = ", ".join(
            f"count(*) FILTER (WHERE duration_ms > {lo} AND duration_ms <= {hi})"
            for lo, hi in zip(lower, bounds, strict=False)
        )
        timings.append(
            (
                "per-minute rollups of the audit rows",
                _sql(
                    cur,
                    f"""
            INSERT INTO mcp_core_metricrollup AS r (minute, service, operation, tenant_id, calls, caller_errors,
                not_configured, service_failures, total_ms, max_ms, {", ".join(columns)})
            SELECT date_trunc('minute', created_at), service, operation, COALESCE(tenant_id, 0), count(*),
                   count(*) FILTER (WHERE error_code IN ({_codes(OutcomeClass.CALLER_ERROR)})),
                   count(*) FILTER (WHERE error_code IN ({_codes(OutcomeClass.NOT_CONFIGURED)})),
                   count(*) FILTER (WHERE error_code IN ({_codes(OutcomeClass.SERVICE_FAILURE)})),
                   sum(duration_ms), max(duration_ms), {buckets}, count(*) FILTER (WHERE duration_ms > 10000)
            FROM mcp_core_auditentry WHERE id >= %s GROUP BY 1, 2, 3, 4
            ON CONFLICT (minute, service, operation, tenant_id) DO UPDATE SET
                {", ".join(f"{c} = r.{c} + excluded.{c}" for c in added)},
                max_ms = GREATEST(r.max_ms, excluded.max_ms)
            """,
                    [first_generated],
                ),
            )
        )
        timings.append(("ANALYZE", _sql(cur, "ANALYZE")))
        cur.execute("SELECT count(*) FROM mcp_core_metricrollup")
        timings.append((f"({cur.fetchone()[0]:,} rollup rows)", 0.0))
    return timings


def check_counts() -> list[str]:
    """The rollups' figures per outcome class against the audit rows they count."""
    from django.db.models import Count, Q, Sum

    from dashboard.selectors import monitoring_data
    from mcp_core.contracts import OutcomeClass, codes_of
    from mcp_core.models import AuditEntry, MetricRollup

    names = ["calls", "caller_errors", "not_configured", "service_failures"]
    rolled = MetricRollup.objects.aggregate(**{n: Sum(n) for n in names})
    kinds = [OutcomeClass.CALLER_ERROR, OutcomeClass.NOT_CONFIGURED, OutcomeClass.SERVICE_FAILURE]
    audited = AuditEntry.objects.aggregate(
        calls=Count("id"),
        **{
            n: Count("id", filter=Q(error_code__in=codes_of(k)))
            for n, k in zip(names[1:], kinds, strict=True)
        },
    )
    totals = monitoring_data("7d")["totals"]
    return [
        f"rollups, all rows:   {', '.join(f'{n} {rolled[n]:,}' for n in names)}",
        f"audit log, all rows: {', '.join(f'{n} {audited[n]:,}' for n in names)}"
        f"  -> {'same' if rolled == audited else 'DIFFERENT'}",
        f"monitoring 7d: {totals['calls']:,} calls; service failures {totals['service_failure_pct']} %, "
        f"caller errors {totals['caller_error_pct']} %, not configured {totals['not_configured_pct']} %",
    ]


def measure_pages(repeat: int) -> list[tuple[str, float, int]]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    user = get_user_model().objects.filter(username="bench-ops").first()
    if user is None:
        user = get_user_model().objects.create_superuser("bench-ops", "ops@example.com", "bench-password-1")
    client = Client()
    client.force_login(user)
    urls = [
        "/admin/",
        "/admin/dashboard/",
        "/admin/monitoring/?window=1h",
        "/admin/monitoring/?window=24h",
        "/admin/monitoring/?window=7d",
        "/admin/monitoring/data.json?window=7d",
        "/admin/improvements/",
        "/admin/console/?op=database.search",
    ]
    rows = []
    for url in urls:
        response = client.get(url)  # warm: templates, registry, connections
        assert response.status_code == 200, (url, response.status_code, response.content[:300])
        times, db_times = [], []
        for _ in range(repeat):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                client.get(url)
                times.append((time.perf_counter() - started) * 1000)
            db_times.append(sum(float(q["time"]) for q in queries.captured_queries) * 1000)
        rows.append(
            (url, statistics.median(times), len(queries.captured_queries), statistics.median(db_times))
        )
    return rows


def run_engine():
    from dashboard.engine import ImprovementEngine

    started = time.perf_counter()
    run = ImprovementEngine().run(trigger="command")
    return (time.perf_counter() - started) * 1000, run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--audit", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database", help="a database to use and keep (default: a throw-away one)")
    args = parser.parse_args()
    with bench_database(args.database, keep=bool(args.database)) as database_url:
        os.environ.update(bench_env(database_url, ALLOWED_HOSTS="testserver,127.0.0.1"))
        import django

        django.setup()
        from dashboard.models import RollupWatermark
        from dashboard.rollups import compact_hourly
        from mcp_core.models import AuditEntry

        before = "empty"
        if args.database:
            kept = AuditEntry.objects.count()
            before = "before" if kept else "empty"
            print(f"database {args.database} (kept): {kept:,} audit rows from earlier runs", flush=True)
        baseline = {url: (ms, q) for url, ms, q, _ in measure_pages(args.repeat)}
        base_engine_ms, _ = run_engine()

        print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
        print(f"\n== Generating data (PostgreSQL generate_series, {TENANTS} tenants) ==")
        for label, seconds in generate(args.calls, args.audit):
            print(f"  {label:45} {seconds:7.1f} s" if seconds else f"  {label}", flush=True)
        # The generated rows fill past hours, which a kept database's earlier run compacted
        # already: compact the whole week again (live calls only ever fill the open hour).
        RollupWatermark.objects.all().delete()
        started = time.perf_counter()
        compact_hourly()
        print(f"  {'hourly compaction (7 days, first run)':45} {time.perf_counter() - started:7.1f} s")
        started = time.perf_counter()
        compact_hourly()
        print(f"  {'hourly compaction (next run, nothing new)':45} {time.perf_counter() - started:7.3f} s")
        for line in check_counts():
            print(f"  {line}", flush=True)

        print(f"\n== Admin pages: median of {args.repeat} requests, Django test client, DEBUG off ==")
        print(
            f"{'page':42} {before + ' ms':>9} {'1M ms':>8} {'ratio':>6} {'SQL ms':>7} {'queries':>8}  target <200 ms"
        )
        worst = 0.0
        for url, ms, queries, db_ms in measure_pages(args.repeat):
            base_ms, base_q = baseline[url]
            worst = max(worst, ms)
            same = "" if base_q == queries else f" (empty: {base_q})"
            print(
                f"{url:42} {base_ms:9.1f} {ms:8.1f} {ms / base_ms:5.1f}x {db_ms:7.1f} {queries:8d}{same}  {'ok' if ms < 200 else 'OVER'}"
            )

        engine_ms, run = run_engine()
        print("\n== ImprovementEngine (all registered analyzers) ==")
        print(f"  {before + ' database:':15} {base_engine_ms:8.0f} ms")
        print(
            f"  with the data:  {engine_ms:8.0f} ms  ({engine_ms / base_engine_ms:.1f}x)  target < 10000 ms: "
            f"{'ok' if engine_ms < 10_000 else 'OVER'}"
        )
        for entry in run.analyzers:
            state = entry["error"] or (
                f"skipped: {entry['skipped']}" if entry["skipped"] else f"{entry['findings']} finding(s)"
            )
            print(f"    {entry['name']:24} {entry['ms']:8.1f} ms  {state}")
        print(
            f"\nslowest page: {worst:.1f} ms; load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        from django.db import connections

        connections.close_all()
        for conn in connections.all():
            if hasattr(conn, "close_pool"):
                conn.close_pool()


if __name__ == "__main__":
    main()
