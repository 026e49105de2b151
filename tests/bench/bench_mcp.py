"""MCP endpoint throughput (issue 3, section 7): tools/call through /mcp with the full pipeline
(key check, scope, validation, one audit row and one rollup increment per call) against a bare
Django JSON view in the same gunicorn, and against the official SDK's own server
(mcp.server.MCPServer, stateless Streamable HTTP under uvicorn) serving an equally trivial tool.

/mcp runs twice: with the default batched recording (mcp_core.recorder: read-only calls' rows
written every MCP_AUDIT_FLUSH_MS by a thread per worker) and with MCP_AUDIT_FLUSH_MS=0 (every
row committed before the answer). After the load, the bench checks that the database holds
exactly one audit row per answered call.

    .venv/bin/python -m tests.bench.bench_mcp [--seconds 8] [--connections 16]

gunicorn -w 2 and uvicorn --workers 2, DEBUG off, PostgreSQL and Redis, one machine, one run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator

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

LEGACY_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2025-11-25",
}


def tools_call(name: str, arguments: dict, *, modern: bool) -> tuple[str, dict[str, str]]:
    params: dict = {"name": name, "arguments": arguments}
    headers = dict(LEGACY_HEADERS)
    if modern:
        params["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        }
        headers.update({"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": name})
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params})
    return body, headers


@contextlib.contextmanager
def sdk_server(database_url: str, workers: int = 2) -> Iterator[str]:
    port = free_port()
    command = [PYTHON, "-m", "uvicorn", "tests.bench.sdk_echo_app:app", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(workers), "--log-level", "warning", "--no-access-log"]  # fmt: skip
    # The SDK refuses a bare GET /mcp: any HTTP answer means it is up.
    with served(
        command, env=bench_env(database_url), probe=f"http://127.0.0.1:{port}/mcp", any_answer=True
    ) as base:
        yield base


def check_once(url: str, body: str, headers: dict[str, str]) -> dict:
    """One request before loading, so that a benchmark of error responses cannot pass unnoticed."""
    import urllib.request

    request = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - local bench server
        answer = json.loads(response.read())
    result = answer.get("result") or {}
    if "error" in answer or result.get("isError"):
        raise RuntimeError(f"bench request fails: {answer}")
    return result


def drive_mcp(base: str, name: str, arguments: dict, *, modern: bool, auth: dict, args) -> dict:
    body, headers = tools_call(name, arguments, modern=modern)
    headers = {**headers, **auth}
    check_once(base + "/mcp", body, headers)
    result = load(
        base + "/mcp",
        method="POST",
        body=body,
        headers=headers,
        seconds=args.seconds,
        connections=args.connections,
    )
    # A tool error is HTTP 200 (isError), invisible to the load tool: a call after the load
    # shows that the calls were still answered for real (not rate limited, for instance).
    check_once(base + "/mcp", body, headers)
    return result


def lift_demo_rate_limit(database_url: str) -> None:
    """The demo plan allows 120 calls a minute (to show the limiter); a benchmark must not be refused."""
    import psycopg

    with psycopg.connect(database_url.replace("postgres://", "postgresql://")) as conn:
        conn.execute("UPDATE askpro_plan SET requests_per_minute = 10000000, max_concurrent_calls = 10000")


def audit_rows(database_url: str, service: str) -> int:
    import psycopg

    with psycopg.connect(database_url.replace("postgres://", "postgresql://")) as conn:
        return conn.execute(
            "SELECT count(*) FROM mcp_core_auditentry WHERE service = %s", [service]
        ).fetchone()[0]


def check_audit(database_url: str, answered: int, connections: int) -> int:
    """One audit row per answered echo call. The load tool counts the answers it read; calls
    in flight when it stopped were served and recorded too: up to one per connection and phase."""
    rows = audit_rows(database_url, "echo")
    if not answered <= rows <= answered + 3 * connections:
        raise SystemExit(f"audit rows ({rows}) do not match the answered calls ({answered})")
    return rows


def _per_call_ms(func, iterations: int) -> float:
    import time

    for _ in range(min(100, iterations)):
        func()
    started = time.perf_counter()
    for _ in range(iterations):
        func()
    return (time.perf_counter() - started) / iterations * 1000


def in_process_breakdown(database_url: str, raw_key: str, iterations: int) -> list[tuple[str, float]]:
    """Where a /mcp tools/call spends its time, measured in this process (Django test client)."""
    import os
    import time

    # Queue without a background flush here, so that the batch write below is timed alone.
    os.environ.update(bench_env(database_url, MCP_AUDIT_FLUSH_MS="600000"))
    import django

    django.setup()
    del os.environ["MCP_AUDIT_FLUSH_MS"]  # read; the servers started later must not inherit it
    from django.db import connections
    from django.test import Client

    from mcp_core.api_keys import api_key_authenticate
    from mcp_core.contracts import MCPRequest
    from mcp_core.pipeline import route

    client = Client(HTTP_HOST="127.0.0.1")
    body, headers = tools_call("echo_echo", {"text": "hi"}, modern=False)
    headers = {k: v for k, v in headers.items() if k != "Content-Type"}
    headers["Authorization"] = f"Bearer {raw_key}"
    from mcp_core.recorder import flush_recorder

    principal = api_key_authenticate(raw_key)
    durable = MCPRequest(service="echo", operation="echo", params={"text": "hi"}, principal=principal)
    batched = MCPRequest(
        service="echo", operation="echo", params={"text": "hi"}, principal=principal, transport="mcp"
    )
    rows = [
        (
            "bare Django view (test client)",
            lambda: client.post("/bench/bare", "{}", content_type="application/json"),
        ),
        ("api_key_authenticate()", lambda: api_key_authenticate(raw_key)),
        ("route(echo), row written before the answer", lambda: route(durable)),
        ("route(echo), row queued for the batch (as over /mcp)", lambda: route(batched)),
        (
            "/mcp tools/call echo_echo (test client)",
            lambda: client.post("/mcp", body, content_type="application/json", headers=headers),
        ),
    ]
    results = [(name, _per_call_ms(func, iterations)) for name, func in rows]
    started = time.perf_counter()
    written = flush_recorder()
    results.append(
        (f"batch write, per row ({written} rows)", (time.perf_counter() - started) / written * 1000)
    )
    connections.close_all()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=1000)
    args = parser.parse_args()
    with bench_database() as database_url:
        run_manage(["seed_demo"], database_url=database_url)
        lift_demo_rate_limit(database_url)
        raw_key = run_manage(
            ["create_api_key", "--platform", "--scopes", "*", "--name", "bench"], database_url=database_url
        ).strip()
        auth = {"Authorization": f"Bearer {raw_key}"}
        breakdown = in_process_breakdown(database_url, raw_key, args.iterations)
        results: list[tuple[str, dict]] = []
        tool = "wrk -t1" if have_wrk() else "python keep-alive client"
        echo_calls = audit_rows(database_url, "echo")  # the in-process rows above
        with gunicorn(database_url, workers=2) as base:
            bare = load(
                base + "/bench/bare",
                method="POST",
                body=json.dumps({"jsonrpc": "2.0", "id": 1}),
                headers={"Content-Type": "application/json"},
                seconds=args.seconds,
                connections=args.connections,
            )
            results.append(("POST /bench/bare (bare Django JSON view)", bare))
            for label, name, arguments, modern in (
                ("/mcp echo_echo (2025-11-25), batched rows", "echo_echo", {"text": "hi"}, False),
                ("/mcp echo_echo (2026-07-28), batched rows", "echo_echo", {"text": "hi"}, True),
                (
                    "/mcp database_get_tenant_stats, batched",
                    "database_get_tenant_stats",
                    {"tenant": "salon-sonnenschein"},
                    False,
                ),
            ):
                result = drive_mcp(base, name, arguments, modern=modern, auth=auth, args=args)
                echo_calls += result["requests"] + 2 if name == "echo_echo" else 0  # + the two checks
                results.append((label, result))
        # Batched rows are all in the database once the server has stopped gracefully.
        check_audit(database_url, echo_calls, args.connections)
        with gunicorn(database_url, workers=2, MCP_AUDIT_FLUSH_MS="0") as base:
            result = drive_mcp(base, "echo_echo", {"text": "hi"}, modern=False, auth=auth, args=args)
            echo_calls += result["requests"] + 2
            results.append(("/mcp echo_echo, each row before its answer", result))
        echo_rows = check_audit(database_url, echo_calls, args.connections)
        with sdk_server(database_url, workers=2) as base:
            body, headers = tools_call("echo", {"text": "hi"}, modern=False)
            check_once(base + "/mcp", body, headers)
            sdk = load(
                base + "/mcp",
                method="POST",
                body=body,
                headers=headers,
                seconds=args.seconds,
                connections=args.connections,
            )
            results.append(("SDK MCPServer tools/call echo (uvicorn)", sdk))

        print(
            f"\n== MCP tools/call throughput: gunicorn -w 2 / uvicorn --workers 2, DEBUG off, "
            f"{args.seconds}s each, {tool} -c{args.connections} =="
        )
        print(
            f"{'endpoint':46} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'vs bare':>8} {'vs SDK':>8}"
        )
        for name, result in results:
            print(
                f"{name:46} {result['rps']:8.0f} {result['p50_ms']:8.2f} {result['p99_ms']:8.2f} "
                f"{result['errors']:7.0f} {result['rps'] / bare['rps']:7.2f}x {result['rps'] / sdk['rps']:7.1f}x"
            )
        print("  targets: /mcp echo >= 0.5x bare and >= 8x SDK, with audit + metrics written per call")
        print(f"  audit rows of echo calls: {echo_rows} for {echo_calls} answers counted by the load tool")
        print(f"\n== Per call, in process, {args.iterations} iterations (ms) ==")
        for name, ms in breakdown:
            print(f"{name:58} {ms:8.3f}")


if __name__ == "__main__":
    main()
