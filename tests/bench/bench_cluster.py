"""Several instances, one system (issue 13), measured side by side in one run:

- a tenant's rate-limit decisions (echo.tenant_echo, no I/O) through two web instances against one (the same number of
  gunicorn worker processes in total), and how many calls each let through against the plan:
  with state shared in Redis two instances allow what one allows, not twice as much;
- the cost of checking pooled database connections on checkout (DB_POOL_CHECK) on one instance;
- the failover window under Redis Sentinel: a master, a replica and three sentinels on free
  ports, one web instance under load, the master killed by pid; from the first call answered
  without the limiter (or failed) to the first normal answer after the last such call.

    .venv/bin/python -m tests.bench.bench_cluster [--seconds 6] [--limit 120] [--failovers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import threading
import time

from tests.bench.harness import bench_database, bench_env, have_wrk, load
from tests.cluster import group


def setup_tenants(limit: int) -> tuple[dict[str, str], str]:
    """Tenants with a plan of `limit` calls per minute (one per measured case) and their keys,
    plus a key of an unlimited tenant (for the failover load)."""
    import django

    django.setup()
    from askpro.demo import seed_demo
    from askpro.models import Company, Plan
    from mcp_core.api_keys import api_key_create

    seed_demo()
    limited = Plan.objects.create(
        code="bench-limited", name="Bench", requests_per_minute=limit, max_concurrent_calls=10_000
    )
    unlimited, _ = Plan.objects.get_or_create(
        code="bench-unlimited",
        defaults={"name": "Bench", "requests_per_minute": 10**9, "max_concurrent_calls": 10_000},
    )
    template = Company.objects.get(slug="salon-sonnenschein")
    keys = {}
    for case in ("one", "two"):
        tenant = Company.objects.create(name=f"Bench {case}", slug=f"bench-{case}", plan=limited)
        keys[case] = api_key_create(name=f"bench {case}", scopes=["*"], tenant=tenant)[1]
    Company.objects.filter(pk=template.pk).update(plan=unlimited)
    busy = api_key_create(name="bench busy", scopes=["*"], tenant=template)[1]
    from django.db import connections

    connections.close_all()
    return keys, busy


# Tenant-scoped (the limiter applies) and without I/O of its own: the decisions are what is measured.
STATS = {"service": "echo", "operation": "tenant_echo", "params": {"text": "hi"}}


def call_body() -> str:
    return json.dumps(STATS)


def drive(bases: list[str], key: str, seconds: int, connections: int) -> dict[str, float]:
    """wrk (or the Python client) against every base at once, connections split between them."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    results: list[dict[str, float]] = []
    lock = threading.Lock()

    def one(base: str) -> None:
        result = load(
            base + "/api/v1/mcp/call",
            method="POST",
            body=call_body(),
            headers=headers,
            seconds=seconds,
            connections=max(1, connections // len(bases)),
        )
        with lock:
            results.append(result)

    threads = [threading.Thread(target=one, args=(base,)) for base in bases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    requests = sum(r["requests"] for r in results)
    refused = sum(r["errors"] for r in results)  # non-2xx: 429 here
    return {
        "rps": sum(r["rps"] for r in results),
        "requests": requests,
        "allowed": requests - refused,
        "p99_ms": max(r["p99_ms"] for r in results),
    }


def started(procs: list[group.Proc]) -> list[group.Proc]:
    group.start_all(procs)
    return procs


def limits_section(database_url: str, keys: dict[str, str], busy_key: str, args, logs) -> None:
    env = bench_env(database_url)
    one = [group.web("bench-one", env, logs, workers=2, threads=1)]
    two = [group.web(f"bench-two-{i}", env, logs, workers=1, threads=1) for i in (1, 2)]
    try:
        started([*one, *two])
        # Warm-up (imports, pools) with the unlimited tenant: the measured tenants' buckets stay full.
        drive([one[0].base, *(w.base for w in two)], busy_key, 1, 6)
        single = drive([one[0].base], keys["one"], args.seconds, args.connections)
        double = drive([w.base for w in two], keys["two"], args.seconds, args.connections)
    finally:
        group.stop_all([*one, *two])
    expected = args.limit + args.limit * args.seconds / 60
    tool = "wrk -t1" if have_wrk() else "python keep-alive client"
    print(
        f"\n== A tenant's limit decisions: plan {args.limit}/min, {args.seconds}s, {args.connections} "
        f"connections ({tool}), echo.tenant_echo =="
    )
    print(
        f"{'deployment':44} {'decisions/s':>12} {'p99 ms':>8} {'allowed':>8} {'plan allows':>12} {'allowed/plan':>13}"
    )
    for name, result in (
        ("one instance, gunicorn -w 2", single),
        ("two instances, gunicorn -w 1 each", double),
    ):
        print(
            f"{name:44} {result['rps']:12.0f} {result['p99_ms']:8.1f} {result['allowed']:8.0f} "
            f"{expected:12.0f} {result['allowed'] / expected:12.2f}x"
        )
    print(
        f"  (GCRA: the plan allows a burst of {args.limit} plus {args.limit}/60 per second; per-instance "
        "state would let each instance's processes through on their own)"
    )


def pool_check_section(database_url: str, busy_key: str, args, logs) -> None:
    checked = group.web("bench-checked", bench_env(database_url), logs, workers=2, threads=1)
    unchecked = group.web(
        "bench-unchecked", bench_env(database_url, DB_POOL_CHECK="0"), logs, workers=2, threads=1
    )
    rows = {"checked": [], "unchecked": []}
    try:
        started([checked, unchecked])
        for _ in range(2):  # interleaved, so that drift hits both alike
            for name, proc in (("checked", checked), ("unchecked", unchecked)):
                rows[name].append(drive([proc.base], busy_key, max(2, args.seconds // 2), args.connections))
    finally:
        group.stop_all([checked, unchecked])
    print(
        f"\n== Pooled connection check on checkout (DB_POOL_CHECK), one instance -w 2, {args.connections} connections =="
    )
    print(f"{'setting':44} {'req/s':>8} {'p99 ms':>8}")
    base_rps = statistics.mean(r["rps"] for r in rows["unchecked"])
    for name, label in (("unchecked", "DB_POOL_CHECK=0"), ("checked", "DB_POOL_CHECK=1 (default)")):
        rps = statistics.mean(r["rps"] for r in rows[name])
        p99 = max(r["p99_ms"] for r in rows[name])
        print(f"{label:44} {rps:8.0f} {p99:8.1f}   {rps / base_rps:5.2f}x")


def failover_once(sentinels: group.SentinelGroup, base: str, key: str) -> tuple[list, float, float]:
    def decided_since(load: group.Load, t: float) -> int:
        return sum(1 for r in load.since(t) if r[3])

    with group.Load([base], key, body=STATS, threads=3) as loaded:
        group.wait_for(lambda: decided_since(loaded, 0) >= 50, 30, "load running")
        killed = time.monotonic()
        sentinels.master.kill()
        group.wait_for(lambda: sentinels.master_port() == sentinels.replica.port, 60, "promotion")
        promoted = time.monotonic()
        group.wait_for(lambda: decided_since(loaded, promoted) >= 50, 30, "normal answers again")
    return loaded.since(killed), killed, promoted


def failover_section(database_url: str, busy_key: str, args, logs) -> None:
    print(f"\n== Redis Sentinel failover under load (down-after 1000 ms), {args.failovers} run(s) ==")
    print(
        f"{'run':>4} {'promoted after kill s':>22} {'window s':>9} {'calls in window':>16} {'failed calls':>13}"
    )
    for run in range(1, args.failovers + 1):
        sentinels = group.SentinelGroup(logs)
        web: list[group.Proc] = []
        try:
            sentinels.start()
            env = bench_env(
                database_url,
                REDIS_URL="",
                REDIS_SENTINELS=sentinels.sentinels_setting,
                REDIS_SENTINEL_MASTER=sentinels.MASTER,
                REDIS_CONNECT_TIMEOUT="0.5",
                REDIS_SOCKET_TIMEOUT="0.5",
                MCP_RESILIENCE_REDIS_RETRY_SECONDS="0.3",
            )
            web = started([group.web(f"bench-ha-{run}", env, logs, workers=1, threads=8)])
            answers, killed, promoted = failover_once(sentinels, web[0].base, busy_key)
            normal = [status == 200 and decided for _, _, status, decided in answers]
            first_bad = normal.index(False)
            last_bad = len(normal) - 1 - normal[::-1].index(False)
            window = answers[last_bad + 1][0] - answers[first_bad][0]
            failed = sum(1 for _, _, status, _ in answers if status != 200)
            print(
                f"{run:4d} {promoted - killed:22.2f} {window:9.2f} {last_bad - first_bad + 1:16d} {failed:13d}"
            )
        finally:
            group.stop_all(web)
            sentinels.stop()
    print(
        "  (calls in the window are answered without limits or breakers: fail open; a failed call "
        "would be a refused connection or an error)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--limit", type=int, default=120, help="the limited plan's calls per minute")
    parser.add_argument("--failovers", type=int, default=2)
    args = parser.parse_args()
    logs = group.log_dir("askpro-bench-cluster")
    try:
        with bench_database() as database_url:
            os.environ.update(bench_env(database_url))
            keys, busy_key = setup_tenants(args.limit)
            limits_section(database_url, keys, busy_key, args, logs)
            pool_check_section(database_url, busy_key, args, logs)
            failover_section(database_url, busy_key, args, logs)
    finally:
        shutil.rmtree(logs, ignore_errors=True)


if __name__ == "__main__":
    main()
