"""What observability costs a /mcp tools/call (issue 14, section 3): metrics off, metrics on (the
Prometheus counters and the HTTP middleware, as shipped) and OpenTelemetry tracing on (every
instrumentation, spans built and handed to the batch processor, dropped by a no-op exporter),
side by side in one run.

Two measurements of the same three modes:
- in process (Django test client, no network): microseconds per call, the modes taken in turn
  over several rounds (median per mode), so that drift on a shared machine hits them alike;
- gunicorn -w 2 under load (DEBUG off, PostgreSQL, Redis, PROMETHEUS_MULTIPROC_DIR as in
  production): requests per second, and the time per call that throughput implies.

    .venv/bin/python -m tests.bench.bench_observability [--seconds 8] [--connections 16] [--iterations 1000]
        [--rounds 3] [--load-rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from tests.bench.bench_mcp import drive_mcp, lift_demo_rate_limit, tools_call
from tests.bench.harness import bench_database, bench_env, gunicorn, have_wrk, run_manage
from tests.bench.observability_modes import MODES

LABELS = {
    "metrics_off": "metrics off",
    "metrics_on": "metrics on (as shipped)",
    "tracing": "metrics on + tracing (no-op exporter)",
}


def _per_call_us(func, iterations: int) -> float:
    for _ in range(min(100, iterations)):
        func()
    started = time.perf_counter()
    for _ in range(iterations):
        func()
    return (time.perf_counter() - started) / iterations * 1e6


def in_process(database_url: str, raw_key: str, iterations: int, rounds: int) -> dict[str, dict[str, float]]:
    # Rows queue without a background flush; each round writes its batch outside the timing.
    os.environ.update(bench_env(database_url, MCP_AUDIT_FLUSH_MS="600000"))
    import django

    django.setup()
    del os.environ["MCP_AUDIT_FLUSH_MS"]  # read; the servers started later must not inherit it
    from django.db import connections
    from django.test import Client

    from mcp_core.api_keys import api_key_authenticate
    from mcp_core.contracts import MCPRequest
    from mcp_core.pipeline import route
    from mcp_core.recorder import flush_recorder
    from tests.bench.observability_modes import apply, reset

    body, headers = tools_call("echo_echo", {"text": "hi"}, modern=False)
    headers = {k: v for k, v in headers.items() if k != "Content-Type"}
    headers["Authorization"] = f"Bearer {raw_key}"
    request = MCPRequest(
        service="echo",
        operation="echo",
        params={"text": "hi"},
        principal=api_key_authenticate(raw_key),
        transport="mcp",
    )
    samples: dict[str, dict[str, list[float]]] = {mode: {"mcp": [], "route": []} for mode in MODES}
    for _ in range(rounds):
        for mode in MODES:
            apply(mode, set_global=False)
            connections.close_all()  # a new connection goes through the (un)instrumented connect
            client = Client(HTTP_HOST="127.0.0.1")  # loads the middleware of this mode
            samples[mode]["mcp"].append(
                _per_call_us(
                    lambda client=client: client.post(
                        "/mcp", body, content_type="application/json", headers=headers
                    ),
                    iterations,
                )
            )
            samples[mode]["route"].append(_per_call_us(lambda: route(request), iterations))
            reset()
            flush_recorder()
    connections.close_all()
    return {mode: {k: statistics.median(v) for k, v in found.items()} for mode, found in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--load-rounds", type=int, default=2)
    args = parser.parse_args()
    with bench_database() as database_url, tempfile.TemporaryDirectory() as multiproc:
        run_manage(["seed_demo"], database_url=database_url)
        lift_demo_rate_limit(database_url)
        raw_key = run_manage(
            ["create_api_key", "--platform", "--scopes", "*", "--name", "bench"], database_url=database_url
        ).strip()
        auth = {"Authorization": f"Bearer {raw_key}"}
        per_call = in_process(database_url, raw_key, args.iterations, args.rounds)
        loaded = {}
        for mode in MODES:
            for name in os.listdir(multiproc):  # a fresh multiprocess directory per server
                os.unlink(os.path.join(multiproc, name))
            with gunicorn(
                database_url,
                workers=2,
                app="tests.bench.wsgi_observability:application",
                BENCH_OBSERVABILITY=mode,
                PROMETHEUS_MULTIPROC_DIR=multiproc,
            ) as base:
                loaded[mode] = drive_mcp(
                    base, "echo_echo", {"text": "hi"}, modern=False, auth=auth, args=args
                )

    base_mcp, base_route = per_call["metrics_off"]["mcp"], per_call["metrics_off"]["route"]
    print(
        f"\n== /mcp tools/call echo_echo in process (test client), median of {args.rounds} rounds "
        f"x {args.iterations} calls (µs per call) =="
    )
    print(f"{'mode':40} {'/mcp':>9} {'+ vs off':>9} {'route()':>9} {'+ vs off':>9}")
    for mode in MODES:
        mcp, route_us = per_call[mode]["mcp"], per_call[mode]["route"]
        print(
            f"{LABELS[mode]:40} {mcp:9.1f} {mcp - base_mcp:+9.1f} {route_us:9.1f} {route_us - base_route:+9.1f}"
        )

    tool = "wrk -t1" if have_wrk() else "python keep-alive client"
    off = loaded["metrics_off"]
    print(
        f"\n== /mcp tools/call echo_echo under load: gunicorn -w 2, DEBUG off, {args.seconds}s each, "
        f"{tool} -c{args.connections}, best of {args.load_rounds} rounds =="
    )
    print(
        f"{'mode':40} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'vs off':>7} "
        f"{'µs/call':>8} {'+ vs off':>9}"
    )
    for mode in MODES:
        result = loaded[mode]
        us = 1e6 / result["rps"]  # machine time per call at full load (2 cores, load tool included)
        print(
            f"{LABELS[mode]:40} {result['rps']:8.0f} {result['p50_ms']:8.2f} {result['p99_ms']:8.2f} "
            f"{result['errors']:7.0f} {result['rps'] / off['rps']:6.2f}x {us:8.0f} {us - 1e6 / off['rps']:+9.0f}"
        )
    print("  µs/call under load = 1 / throughput: the whole machine's time per call, load tool included")


if __name__ == "__main__":
    main()
