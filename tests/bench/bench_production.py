"""The production layout's cost (issue 13, section 3): /mcp tools/call throughput with gunicorn
started from deploy/gunicorn.conf.py on the production settings (askpro.settings plus the echo
server, DEBUG off, WhiteNoise, collectstatic's output, pooled connections checked) against
today's benchmark configuration (bench_mcp: `gunicorn -w 2` on the bench settings as they were
before the production layout). Target: the production layout costs at most 10 % of today's
throughput.

    .venv/bin/python -m tests.bench.bench_production [--seconds 24] [--rounds 6] [--connections 16]

Both servers run side by side on one bench database; the load alternates between them in
--rounds slices (wrk -t1 -c16), so that the other work on the machine falls on both alike.
The production side runs with its defaults (sync workers, WEB_CONCURRENCY = the cores, no
access log) unless --web-concurrency, --threads (gthread workers) or --access-log say
otherwise. After the load, the bench checks that the database holds one audit row per answered
call (batched recording on both sides).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
from collections.abc import Iterator

from tests.bench.bench_mcp import audit_rows, check_once, lift_demo_rate_limit, tools_call
from tests.bench.harness import (
    PYTHON,
    bench_database,
    bench_env,
    free_port,
    gunicorn,
    have_wrk,
    load,
    run_manage,
    served,
)

PRODUCTION_SETTINGS = "tests.bench.settings_production"  # askpro.settings + the echo server


@contextlib.contextmanager
def production_server(database_url: str, static_root: str, **extra: str) -> Iterator[str]:
    port = free_port()
    env = bench_env(
        database_url,
        DJANGO_SETTINGS_MODULE=PRODUCTION_SETTINGS,
        STATIC_ROOT=static_root,
        PORT=str(port),
        **extra,
    )
    command = [PYTHON, "-m", "gunicorn", "--config", "deploy/gunicorn.conf.py"]
    with served(command, env=env, probe=f"http://127.0.0.1:{port}/health/ready") as base:
        yield base


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=24, help="load per side, split into the rounds")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--web-concurrency", default="", help="WEB_CONCURRENCY of the production side")
    parser.add_argument("--threads", default="", help="GUNICORN_THREADS of the production side")
    parser.add_argument("--access-log", action="store_true", help="the production side logs each request")
    args = parser.parse_args()
    extra = {"GUNICORN_LOG_LEVEL": "warning"}
    if args.access_log:
        extra["GUNICORN_ACCESS_LOG"] = "-"
    if args.web_concurrency:
        extra["WEB_CONCURRENCY"] = args.web_concurrency
    if args.threads:
        extra["GUNICORN_THREADS"] = args.threads
    slice_seconds = max(1, round(args.seconds / args.rounds))
    body, headers = tools_call("echo_echo", {"text": "hi"}, modern=False)

    with (
        bench_database() as database_url,
        tempfile.TemporaryDirectory(prefix="askpro-static-") as static_root,
    ):
        run_manage(["seed_demo"], database_url=database_url)
        lift_demo_rate_limit(database_url)
        raw_key = run_manage(
            ["create_api_key", "--platform", "--scopes", "*", "--name", "bench"], database_url=database_url
        ).strip()
        headers = {**headers, "Authorization": f"Bearer {raw_key}"}
        # The release step the production layout needs (docs/deployment.md).
        run_manage(
            ["collectstatic", "--noinput", "-v0"],
            database_url=database_url,
            DJANGO_SETTINGS_MODULE=PRODUCTION_SETTINGS,
            STATIC_ROOT=static_root,
        )
        answered = 0
        sides = {"today": [], "production": []}
        with (
            gunicorn(database_url, workers=2, DJANGO_SETTINGS_MODULE="tests.bench.settings_today") as today,
            production_server(database_url, static_root, **extra) as production,
        ):
            bases = {"today": today, "production": production}
            for base in bases.values():  # warm both: imports, connections, the key cache
                check_once(base + "/mcp", body, headers)
                answered += (
                    1
                    + load(
                        base + "/mcp", method="POST", body=body, headers=headers, seconds=1, connections=4
                    )["requests"]
                )
            for round_number in range(args.rounds):
                # Alternate which side goes first, so neither always follows the other's load.
                order = ["today", "production"] if round_number % 2 == 0 else ["production", "today"]
                for name in order:
                    result = load(
                        bases[name] + "/mcp",
                        method="POST",
                        body=body,
                        headers=headers,
                        seconds=slice_seconds,
                        connections=args.connections,
                    )
                    answered += result["requests"]
                    sides[name].append(result)
            for base in bases.values():  # still answering for real after the load (no refusals)
                check_once(base + "/mcp", body, headers)
                answered += 1
        # Both servers have stopped gracefully: every batched row is written.
        rows = audit_rows(database_url, "echo")

    def total(name: str) -> dict[str, float]:
        results = sides[name]
        requests = sum(r["requests"] for r in results)
        return {
            "rps": requests / (slice_seconds * len(results)),
            "p50_ms": statistics.median(r["p50_ms"] for r in results),
            "p99_ms": max(r["p99_ms"] for r in results),
            "errors": sum(r["errors"] for r in results),
        }

    today_total, production_total = total("today"), total("production")
    ratio = production_total["rps"] / today_total["rps"]
    per_round = [p["rps"] / t["rps"] for t, p in zip(sides["today"], sides["production"], strict=True)]
    cores = len(os.sched_getaffinity(0))
    workers = extra.get("WEB_CONCURRENCY", str(cores))
    threads = extra.get("GUNICORN_THREADS", "1")
    layout = f"sync -w {workers}" if threads == "1" else f"gthread {workers}x{threads}"
    if args.access_log:
        layout += ", access log"
    tool = "wrk -t1" if have_wrk() else "python keep-alive client"
    print(
        f"\n== /mcp tools/call echo_echo: production layout vs today's bench configuration; "
        f"{args.rounds} alternating slices of {slice_seconds}s each, {tool} -c{args.connections}, "
        f"{cores} cores =="
    )
    print(f"{'configuration':76} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for label, result in (
        ("today: gunicorn -w 2 (sync), bench settings", today_total),
        (
            f"production: deploy/gunicorn.conf.py, {layout}, askpro.settings",
            production_total,
        ),
    ):
        print(
            f"{label:76} {result['rps']:8.0f} {result['p50_ms']:8.2f} {result['p99_ms']:8.2f} "
            f"{result['errors']:7.0f}"
        )
    print(
        f"  production / today: {ratio:.3f}  (per slice: {', '.join(f'{r:.2f}' for r in per_round)}); "
        f"target >= 0.90 -> {'met' if ratio >= 0.9 else 'NOT MET'}"
    )
    print(f"  audit rows of echo calls: {rows} for {answered} answers counted by the load tool")
    if not answered <= rows <= answered + 3 * args.connections * (args.rounds + 1):
        raise SystemExit(f"audit rows ({rows}) do not match the answered calls ({answered})")


if __name__ == "__main__":
    main()
