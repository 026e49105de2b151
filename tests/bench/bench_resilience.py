"""Resilience costs (issue 4), measured side by side in one run:

- a rate-limit decision and a breaker check (µs) against a Redis PING round trip;
- fast-fail latency of a call while its service's breaker is open;
- the orchestrator's overhead per call (route() against a direct operation call), with the
  guards on and with MCP_PIPELINE_GUARDS empty (the pipeline before this issue).

    .venv/bin/python -m tests.bench.bench_resilience [--iterations 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from tests.bench.harness import bench_database, bench_env

GUARDS = ["mcp_core.ratelimit.RateLimitGuard", "mcp_core.breaker.BreakerGuard"]


def per_call_us(func, iterations: int, rounds: int = 3) -> float:
    """Median over rounds of the mean per-call time, after a warm-up."""
    for _ in range(min(50, iterations)):
        func()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(iterations):
            func()
        samples.append((time.perf_counter() - started) / iterations * 1e6)
    return statistics.median(samples)


def run(iterations: int) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.test import override_settings

    from askpro.demo import seed_demo
    from askpro.models import Company, Plan
    from mcp_core import breaker, ratelimit, shared_state
    from mcp_core.api_keys import api_key_create, principal_for_key
    from mcp_core.contracts import MCPRequest, OperationContext
    from mcp_core.pipeline import reset_guards_for_tests, route
    from mcp_core.registry import get_registry, reset_registry_for_tests
    from mcp_core.schemas import decode_params

    seed_demo()
    tenant = Company.objects.get(slug="salon-sonnenschein")
    # A plan the bench cannot exhaust: we measure the decision, not refusals.
    plan, _ = Plan.objects.get_or_create(
        code="bench-unlimited",
        defaults={"name": "Bench", "requests_per_minute": 10**9, "max_concurrent_calls": 10_000},
    )
    Company.objects.filter(pk=tenant.pk).update(plan=plan)
    tenant.refresh_from_db()
    key, _ = api_key_create(name="bench-resilience", scopes=["*"], tenant=None)
    principal = principal_for_key(key)
    reset_registry_for_tests()
    registry = get_registry()

    client = shared_state.redis_client()
    limits = ratelimit.limits_for(tenant)
    cfg = breaker.config_for("database")
    redis_breakers = breaker._redis
    local_breakers = breaker._LocalBreakers()
    local_limiter = ratelimit._LocalLimiter()

    def limiter_decision():
        slot = os.urandom(8).hex()
        ratelimit.decide(tenant.pk, "database", limits, slot, 60)
        return slot

    def limiter_pair():
        ratelimit.release(tenant.pk, limiter_decision())

    def local_limiter_pair():
        local_limiter.decide("r", "c", limits, "s", 60_000)
        local_limiter.release("c", "s")

    def breaker_check():
        redis_breakers.acquire("database", cfg)

    def breaker_pair():
        verdict = redis_breakers.acquire("database", cfg)
        redis_breakers.record("database", cfg, verdict.state, verdict.generation, False, False)

    def local_breaker_pair():
        verdict = local_breakers.acquire("database", cfg)
        local_breakers.record("database", cfg, verdict.state, verdict.generation, False, False)

    ping = per_call_us(client.ping, iterations)
    rows = [
        ("Redis PING round trip (baseline)", ping),
        ("rate-limit decision (1 Lua script)", per_call_us(limiter_decision, iterations)),
        ("rate-limit decision + slot release", per_call_us(limiter_pair, iterations)),
        ("breaker check, closed (1 Lua script)", per_call_us(breaker_check, iterations)),
        ("breaker check + outcome record", per_call_us(breaker_pair, iterations)),
        ("rate-limit pair, in process (no Redis)", per_call_us(local_limiter_pair, iterations)),
        ("breaker pair, in process (no Redis)", per_call_us(local_breaker_pair, iterations)),
    ]
    print("\n== Decision costs (in process, local Redis) ==")
    print(f"{'step':44} {'µs':>8} {'x PING':>7}")
    for name, us in rows:
        print(f"{name:44} {us:8.1f} {us / ping:6.2f}x")

    # --- orchestrator overhead: guards off (before this issue) and on, interleaved ---
    cases = [("echo", "echo", {"text": "hi"}, None), ("database", "get_tenant_stats", {}, tenant.slug)]
    print(f"\n== Orchestrator overhead per call, {iterations} calls x 3 rounds, side by side ==")
    print(
        f"{'operation':36} {'direct µs':>10} {'route, no guards':>17} {'route, guards':>14} "
        f"{'guards add µs':>14} {'ratio':>6}"
    )
    for service, operation, params, tenant_arg in cases:
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

        results = {"direct": [], "off": [], "on": []}
        for _ in range(3):  # interleave so that drift hits both sides alike
            results["direct"].append(per_call_us(direct, iterations, rounds=1))
            for mode, guards in (("off", []), ("on", GUARDS)):
                with override_settings(MCP_PIPELINE_GUARDS=guards):
                    reset_guards_for_tests()
                    results[mode].append(per_call_us(routed, iterations, rounds=1))
        reset_guards_for_tests()
        direct_us, off_us, on_us = (statistics.median(results[k]) for k in ("direct", "off", "on"))
        name = f"{service}.{operation}" + (" (tenant)" if tenant_arg else " (no tenant)")
        print(
            f"{name:36} {direct_us:10.1f} {off_us:17.1f} {on_us:14.1f} {on_us - off_us:14.1f} "
            f"{on_us / off_us:5.2f}x"
        )
    print("  (echo is not tenant-scoped: only the breaker applies; get_tenant_stats gets both guards)")

    # --- fast fail while open: against the same call waiting for a stalled upstream ---
    from tests.resilience.dummy_upstream import DummySandbox

    sandbox = DummySandbox().start()
    one_failure_opens = {"minimum_calls": 1, "failure_rate_threshold": 1.0, "open_duration": 3600.0}
    servers = [*settings.MCP_SERVERS, "tests.resilience.dummy_upstream.DummyServer"]
    try:
        with override_settings(
            MCP_SERVERS=servers,
            DUMMY_UPSTREAM_URL=sandbox.url,
            MCP_BREAKERS={"default": {}, "dummy": one_failure_opens},
        ):
            reset_registry_for_tests()
            reset_guards_for_tests()
            request = MCPRequest(
                service="dummy", operation="fetch_quick", params={}, principal=principal, tenant=tenant.slug
            )
            with override_settings(MCP_PIPELINE_GUARDS=[]):
                reset_guards_for_tests()
                sandbox.inject_fault(delay=5.0)  # stalls; the op's deadline is 0.5 s
                stalled_us = per_call_us(lambda: route(request), 3, rounds=1)
            reset_guards_for_tests()
            assert route(request).error["code"] == "timeout"  # this failure opens the breaker
            assert route(request).error["code"] == "circuit_open"
            seen = len(sandbox.request_log)
            refused_us = per_call_us(lambda: route(request), iterations)
            assert len(sandbox.request_log) == seen, "an open breaker must not call the upstream"
            redis_breakers.reset("dummy")
    finally:
        sandbox.stop()
        reset_registry_for_tests()
        reset_guards_for_tests()
    print("\n== Fast fail with the breaker open (dummy.fetch_quick, deadline 0.5 s, upstream stalled) ==")
    print(f"{'call':52} {'µs':>10}")
    print(f"{'route(), no guards: waits for the stalled upstream':52} {stalled_us:10.1f}")
    print(f"{'route(), breaker open: circuit_open, no upstream call':52} {refused_us:10.1f}")
    print(
        f"  fast fail is {stalled_us / refused_us:.0f}x quicker (it still writes its audit row and metrics)"
    )
    leftovers = list(client.scan_iter(shared_state.make_key("*")))
    if leftovers:
        client.delete(*leftovers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1000)
    args = parser.parse_args()
    with bench_database() as database_url:
        os.environ.update(bench_env(database_url))
        run(args.iterations)
        from django.db import connections

        connections.close_all()


if __name__ == "__main__":
    main()
