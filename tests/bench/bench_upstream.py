"""Upstream call overhead (issue 5): an operation routed through the orchestrator against the
same upstream call made with the client directly, and pooled connections against fresh ones,
each service against its own live sandbox, measured side by side in one run.

    .venv/bin/python -m tests.bench.bench_upstream [--iterations 400] [--only calcom,retell]

Plugins: every module tests/bench/upstream_<service>.py exposing `CASE`, an object with
  service: str, operation: str, params: dict  -- the operation routed through route()
  setup(tenant) -> None      start the sandbox, point django.conf.settings at it, seed state
  direct(pooled: bool) -> None  the same upstream call through the service's client, with the
                                process-wide pooled session (True) or a fresh connection (False)
  teardown() -> None         stop what setup started
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import time

from tests.bench.harness import bench_database, bench_env


def _per_call_us(func, iterations: int) -> float:
    for _ in range(min(50, iterations)):  # warm caches and connections
        func()
    started = time.perf_counter()
    for _ in range(iterations):
        func()
    return (time.perf_counter() - started) / iterations * 1e6


def discover_cases(only: set[str]) -> list:
    import tests.bench as package

    cases = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("upstream_"):
            case = getattr(importlib.import_module(f"tests.bench.{info.name}"), "CASE", None)
            if case is not None and (not only or case.service in only):
                cases.append(case)
    return cases


def run(iterations: int, only: set[str]) -> list[tuple[str, float, float, float]]:
    import django

    django.setup()
    from askpro.demo import seed_demo
    from askpro.models import Company
    from mcp_core.api_keys import api_key_create, principal_for_key
    from mcp_core.contracts import MCPRequest
    from mcp_core.pipeline import route

    seed_demo()
    tenant = Company.objects.get(slug="salon-sonnenschein")
    # A generous plan: this measures overhead, not the tenant's rate limit refusing.
    tenant.plan.requests_per_minute = 10**7
    tenant.plan.max_concurrent_calls = 1000
    tenant.plan.save()
    key, _ = api_key_create(name="bench-upstream", scopes=["*"], tenant=None)
    principal = principal_for_key(key)
    rows = []
    for case in discover_cases(only):
        case.setup(tenant)
        try:
            request = MCPRequest(
                service=case.service,
                operation=case.operation,
                params=case.params,
                principal=principal,
                tenant=tenant.slug,
            )

            def routed(request=request):
                response = route(request)
                assert response.success, response.error

            pooled_us = _per_call_us(lambda case=case: case.direct(True), iterations)
            fresh_us = _per_call_us(lambda case=case: case.direct(False), iterations)
            routed_us = _per_call_us(routed, iterations)
            rows.append((f"{case.service}.{case.operation}", pooled_us, fresh_us, routed_us))
        finally:
            case.teardown()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--only", default="", help="comma-separated services")
    args = parser.parse_args()
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    with bench_database() as database_url:
        os.environ.update(bench_env(database_url))
        rows = run(args.iterations, only)
    print("\n== Upstream calls against local sandboxes (per call, µs) ==")
    print(
        f"{'operation':30} {'client pooled':>13} {'client fresh':>13} {'fresh/pooled':>13} "
        f"{'route() pooled':>15} {'route/client':>13}"
    )
    for name, pooled, fresh, routed in rows:
        print(
            f"{name:30} {pooled:13.0f} {fresh:13.0f} {fresh / pooled:12.2f}x {routed:15.0f} {routed / pooled:12.2f}x"
        )
    print(
        "  (route() adds: key scope, param validation, tenant binding, rate limit + breaker guards,"
        " credential lookup, one audit INSERT, one rollup upsert; the sandbox runs in this process)"
    )


if __name__ == "__main__":
    main()
