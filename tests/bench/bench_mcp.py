"""MCP endpoint throughput (issue 3, section 7): tools/call through /mcp with the full pipeline
(key check, scope, validation, audit INSERT, metrics upsert) against a bare Django JSON view in
the same gunicorn, and against the official SDK's own server (mcp.server.MCPServer, stateless
Streamable HTTP under uvicorn) serving an equally trivial tool.

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

    os.environ.update(bench_env(database_url))
    import django

    django.setup()
    from django.db import connections
    from django.test import Client

    from mcp_core.api_keys import api_key_authenticate
    from mcp_core.contracts import MCPRequest
    from mcp_core.pipeline import route

    client = Client(HTTP_HOST="127.0.0.1")
    body, headers = tools_call("echo_echo", {"text": "hi"}, modern=False)
    headers = {k: v for k, v in headers.items() if k != "Content-Type"}
    headers["Authorization"] = f"Bearer {raw_key}"
    principal = api_key_authenticate(raw_key)
    request = MCPRequest(service="echo", operation="echo", params={"text": "hi"}, principal=principal)
    rows = [
        (
            "bare Django view (test client)",
            lambda: client.post("/bench/bare", "{}", content_type="application/json"),
        ),
        ("api_key_authenticate()", lambda: api_key_authenticate(raw_key)),
        ("route(echo) (scope, validation, guards, audit, metrics)", lambda: route(request)),
        (
            "/mcp tools/call echo_echo (test client)",
            lambda: client.post("/mcp", body, content_type="application/json", headers=headers),
        ),
    ]
    results = [(name, _per_call_ms(func, iterations)) for name, func in rows]
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
        raw_key = run_manage(
            ["create_api_key", "--platform", "--scopes", "*", "--name", "bench"], database_url=database_url
        ).strip()
        auth = {"Authorization": f"Bearer {raw_key}"}
        breakdown = in_process_breakdown(database_url, raw_key, args.iterations)
        results: list[tuple[str, dict]] = []
        tool = "wrk -t1" if have_wrk() else "python keep-alive client"
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
                ("/mcp tools/call echo_echo (2025-11-25)", "echo_echo", {"text": "hi"}, False),
                ("/mcp tools/call echo_echo (2026-07-28)", "echo_echo", {"text": "hi"}, True),
                (
                    "/mcp tools/call database_get_tenant_stats",
                    "database_get_tenant_stats",
                    {"tenant": "salon-sonnenschein"},
                    False,
                ),
            ):
                body, headers = tools_call(name, arguments, modern=modern)
                headers = {**headers, **auth}
                check_once(base + "/mcp", body, headers)
                results.append(
                    (
                        label,
                        load(
                            base + "/mcp",
                            method="POST",
                            body=body,
                            headers=headers,
                            seconds=args.seconds,
                            connections=args.connections,
                        ),
                    )
                )
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
        print(f"\n== Per call, in process, {args.iterations} iterations (ms) ==")
        for name, ms in breakdown:
            print(f"{name:58} {ms:8.3f}")


if __name__ == "__main__":
    main()
