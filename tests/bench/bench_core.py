"""Orchestrator overhead (issue 2): route() against calling the operation directly, and
POST /api/v1/mcp/call throughput against a bare Django JSON view in the same gunicorn.

    .venv/bin/python -m tests.bench.bench_core [--seconds 8] [--iterations 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import time

from tests.bench.harness import bench_database, bench_env, gunicorn, have_wrk, load


def _per_call_us(func, iterations: int) -> float:
    for _ in range(min(200, iterations)):  # warm caches and connections
        func()
    started = time.perf_counter()
    for _ in range(iterations):
        func()
    return (time.perf_counter() - started) / iterations * 1e6


def in_process(iterations: int) -> tuple[list[tuple[str, float, float]], str]:
    import django

    django.setup()
    from askpro.demo import seed_demo
    from askpro.models import Company, Plan
    from mcp_core.api_keys import api_key_create, principal_for_key
    from mcp_core.contracts import MCPRequest, OperationContext
    from mcp_core.pipeline import route
    from mcp_core.registry import get_registry
    from mcp_core.schemas import decode_params

    seed_demo()
    # The demo plan allows 120 calls/min (to show the limiter); a benchmark must not be refused.
    Plan.objects.filter(code="demo").update(requests_per_minute=10_000_000, max_concurrent_calls=10_000)
    tenant = Company.objects.get(slug="salon-sonnenschein")
    key, raw = api_key_create(name="bench", scopes=["*"], tenant=None)
    principal = principal_for_key(key)
    registry = get_registry()
    rows = []
    for service, operation, params, tenant_arg in (
        ("echo", "echo", {"text": "hi"}, None),
        ("database", "get_tenant_stats", {}, tenant.slug),
        ("database", "get_call_stats", {"days": 7}, tenant.slug),
    ):
        op = registry.get_operation(service, operation)
        server = registry.get_server(service)
        request = MCPRequest(
            service=service, operation=operation, params=params, principal=principal, tenant=tenant_arg
        )

        def direct(op=op, server=server, request=request, params=params):
            ctx = OperationContext(
                request=request,
                principal=principal,
                tenant=tenant if op.tenant_scoped else None,
                deadline=time.monotonic() + 30,
            )
            server.call(op, ctx, decode_params(op.params, params))

        def routed(request=request):
            response = route(request)
            assert response.success, response.error

        direct_us = _per_call_us(direct, iterations)
        routed_us = _per_call_us(routed, iterations)
        rows.append((f"{service}.{operation}", direct_us, routed_us))
    return rows, raw


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=3000)
    args = parser.parse_args()
    with bench_database() as database_url:
        os.environ.update(bench_env(database_url))
        rows, raw_key = in_process(args.iterations)
        print("\n== Orchestrator overhead per call (in process, PostgreSQL + Redis) ==")
        print(f"{'operation':32} {'direct µs':>10} {'route() µs':>11} {'overhead µs':>12} {'ratio':>7}")
        for name, direct_us, routed_us in rows:
            print(
                f"{name:32} {direct_us:10.1f} {routed_us:11.1f} {routed_us - direct_us:12.1f} {routed_us / direct_us:6.2f}x"
            )
        print(
            "  (route() adds: key scope check, param validation, tenant binding, savepoint, one audit INSERT, one rollup upsert)"
        )

        from django.db import connections

        connections.close_all()
        headers = {"Authorization": f"Bearer {raw_key}", "Content-Type": "application/json"}
        with gunicorn(database_url, workers=2) as base:
            tool = "wrk -t1 -c16" if have_wrk() else "python keep-alive client, 16 connections"
            print(f"\n== HTTP throughput, gunicorn -w 2, DEBUG off, {args.seconds}s each, {tool} ==")
            bare = load(base + "/bench/bare", seconds=args.seconds)
            echo = load(
                base + "/api/v1/mcp/call",
                method="POST",
                headers=headers,
                seconds=args.seconds,
                body=json.dumps({"service": "echo", "operation": "echo", "params": {"text": "hi"}}),
            )
            stats = load(
                base + "/api/v1/mcp/call",
                method="POST",
                headers=headers,
                seconds=args.seconds,
                body=json.dumps(
                    {
                        "service": "database",
                        "operation": "get_tenant_stats",
                        "params": {},
                        "tenant": "salon-sonnenschein",
                    }
                ),
            )
            print(f"{'endpoint':44} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'vs bare':>8}")
            for name, result in (
                ("GET /bench/bare (bare Django JSON view)", bare),
                ("POST /api/v1/mcp/call echo.echo", echo),
                ("POST /api/v1/mcp/call database.get_tenant_stats", stats),
            ):
                print(
                    f"{name:44} {result['rps']:8.0f} {result['p50_ms']:8.2f} {result['p99_ms']:8.2f} "
                    f"{result['errors']:7.0f} {result['rps'] / bare['rps']:7.2f}x"
                )


if __name__ == "__main__":
    main()
