"""Federation: a remote tool called through /mcp (the whole pipeline, the address guard, the
pinned-schema check, the audit row) against calling the same remote server directly with the
official SDK client, in both protocol eras, and the cost of checking a remote answer against its
pinned schema.

The remote is the test suite's SDK server (mcp_servers/federation/tests/remote_app.py) under
uvicorn; the control plane runs under gunicorn on a throw-away database, with two registrations
of that server: `bench` (2025-11-25 handshake) and `benchm` (2026-07-28). Side by side, one run:
- per call, one at a time, per era: direct SDK client on one kept session, direct SDK client with
  a session per call, and /mcp -> remote (the federation client keeps its sessions: pool.py);
- throughput with N concurrent callers, per era: direct SDK sessions against /mcp;
- the schema check alone (jsonschema, compiled validator) per answer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import Iterator

from tests.bench.bench_mcp import check_once, tools_call
from tests.bench.harness import (
    PYTHON,
    bench_database,
    bench_env,
    free_port,
    gunicorn,
    load,
    run_manage,
    served,
)

ALLOW = {"FEDERATION_ALLOWED_NETWORKS": "127.0.0.0/8", "MCP_REGISTRY_RECHECK_SECONDS": "0.5"}


@contextlib.contextmanager
def remote_server(database_url: str) -> Iterator[str]:
    port = free_port()
    command = [PYTHON, "-m", "uvicorn", "mcp_servers.federation.tests.remote_app:app", "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "warning", "--no-access-log"]  # fmt: skip
    with served(
        command, env=bench_env(database_url), probe=f"http://127.0.0.1:{port}/mcp", any_answer=True
    ) as base:
        yield base + "/mcp"


REGISTER = """
from mcp_servers.federation import services
from mcp_servers.federation.models import RemoteServer
for slug, era in (("bench", "legacy"), ("benchm", "2026-07-28")):
    server = RemoteServer.objects.create(slug=slug, title=slug, url={url!r}, era=era, enabled=True, all_tenants=True)
    services.sync_tools(server)
    for tool in server.tools.filter(status="pending"):
        services.approve_tool(tool)
"""
ERAS = (("2025-11-25", "legacy", "fed_bench_echo"), ("2026-07-28", "2026-07-28", "fed_benchm_echo"))


async def _sdk_calls(url: str, n: int, *, per_call_session: bool, mode: str) -> list[float]:
    from mcp import Client

    times: list[float] = []
    if per_call_session:
        for _ in range(n):
            started = time.perf_counter()
            async with Client(url, mode=mode) as client:
                await client.call_tool("echo", {"text": "hi"})
            times.append((time.perf_counter() - started) * 1000)
        return times
    async with Client(url, mode=mode) as client:
        for _ in range(n):
            started = time.perf_counter()
            await client.call_tool("echo", {"text": "hi"})
            times.append((time.perf_counter() - started) * 1000)
    return times


async def _sdk_throughput(url: str, seconds: float, connections: int, mode: str) -> float:
    from mcp import Client

    done = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        async with Client(url, mode=mode) as client:
            while time.perf_counter() < stop:
                await client.call_tool("echo", {"text": "hi"})
                done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return done / (time.perf_counter() - started)


def _warm(base: str, body: str, headers: dict[str, str]) -> None:
    """The first federated call of each worker imports the SDK and opens its kept session
    (seconds on a busy machine): concurrent calls, so that every worker takes some."""
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    def one(_: int) -> None:
        request = urllib.request.Request(base + "/mcp", data=body.encode(), headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 - local bench server
            response.read()

    for _ in range(2):
        with ThreadPoolExecutor(max_workers=4) as threads:
            list(threads.map(one, range(8)))


def _mcp_calls(base: str, body: str, headers: dict[str, str], n: int) -> list[float]:
    import http.client

    conn = http.client.HTTPConnection(base.removeprefix("http://"), timeout=30)
    times = []
    for _ in range(n):
        started = time.perf_counter()
        conn.request("POST", "/mcp", body=body, headers=headers)
        answer = json.loads(conn.getresponse().read())
        times.append((time.perf_counter() - started) * 1000)
        if "error" in answer or answer["result"].get("isError"):
            raise RuntimeError(f"federated call failed: {answer}")
    conn.close()
    return times


def _validation_us(iterations: int) -> tuple[float, float]:
    """Per answer: the pinned-schema check of a small answer, and of a 200-row answer, as the
    federated service checks it (mcp_core.schemas: a compiled validator, the first violation)."""
    from mcp_core.schemas import jsonschema_validator, schema_violation

    small_schema = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
    rows_schema = {
        "type": "object",
        "properties": {
            "rows": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "name": {"type": "string"},
                        "ok": {"type": "boolean"},
                    },
                    "required": ["id", "name"],
                },
            }
        },
        "required": ["rows"],
    }
    rows = {"rows": [{"id": i, "name": f"row {i}", "ok": True} for i in range(200)]}
    results = []
    for schema, value in ((small_schema, {"text": "hi"}), (rows_schema, rows)):
        validator = jsonschema_validator(schema)
        started = time.perf_counter()
        for _ in range(iterations):
            if schema_violation(validator, value) is not None:
                raise RuntimeError("bench answer does not validate")
        results.append((time.perf_counter() - started) / iterations * 1e6)
    return results[0], results[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--calls", type=int, default=150)
    args = parser.parse_args()
    kept, fresh, direct_rps, federated, through = {}, {}, {}, {}, {}
    with bench_database() as database_url, remote_server(database_url) as remote:
        run_manage(["shell", "-c", REGISTER.format(url=remote)], database_url=database_url, **ALLOW)
        raw_key = run_manage(
            ["create_api_key", "--platform", "--scopes", "*", "--name", "bench"], database_url=database_url
        ).strip()
        run_manage(["seed_demo"], database_url=database_url)
        from tests.bench.bench_mcp import lift_demo_rate_limit

        lift_demo_rate_limit(database_url)
        for era, mode, _ in ERAS:
            kept[era] = asyncio.run(_sdk_calls(remote, args.calls, per_call_session=False, mode=mode))
            fresh[era] = asyncio.run(_sdk_calls(remote, args.calls, per_call_session=True, mode=mode))
            direct_rps[era] = asyncio.run(_sdk_throughput(remote, args.seconds, args.connections, mode))
        requests = {}
        for era, _, tool in ERAS:
            body, headers = tools_call(tool, {"text": "hi", "tenant": "salon-sonnenschein"}, modern=False)
            requests[era] = body, {**headers, "Authorization": f"Bearer {raw_key}"}
        with gunicorn(database_url, workers=2, **ALLOW) as base:
            for era, _, _ in ERAS:
                _warm(base, *requests[era])
                check_once(base + "/mcp", *requests[era])
            # The pipeline alone, for reference: a local operation over the same /mcp.
            local_body, local_headers = tools_call("echo_echo", {"text": "hi"}, modern=False)
            local_request = local_body, {**local_headers, "Authorization": f"Bearer {raw_key}"}
            check_once(base + "/mcp", *local_request)
            # Interleaved, so that neither era is measured on a busier machine than the other.
            federated = {era: [] for era, _, _ in ERAS}
            local: list[float] = []
            for _ in range(3):
                for era, _, _ in ERAS:
                    federated[era] += _mcp_calls(base, *requests[era], args.calls // 3)
                local += _mcp_calls(base, *local_request, args.calls // 3)
            for era, _, _ in ERAS:
                body, headers = requests[era]
                through[era] = load(
                    base + "/mcp", method="POST", body=body, headers=headers, seconds=args.seconds,
                    connections=args.connections,
                )  # fmt: skip
                check_once(base + "/mcp", body, headers)
        small_us, rows_us = _validation_us(2000)

    def p50(values: list[float]) -> float:
        return statistics.median(values)

    print(
        f"\n== Federated tool call vs the remote directly (SDK client), {args.calls} calls one at a time =="
    )
    print(f"{'p50 ms':58} {'2025-11-25':>11} {'2026-07-28':>11}")
    rows = (
        ("SDK client -> remote, one kept session", kept),
        ("SDK client -> remote, a session per call", fresh),
        ("/mcp -> federation client (kept session) -> remote", federated),
    )
    for label, values in rows:
        print(f"{label:58} " + " ".join(f"{p50(values[era]):11.2f}" for era, _, _ in ERAS))
    print(f"{'(/mcp -> a local operation, echo_echo, for reference)':58} {p50(local):11.2f}")
    print(f"{'overhead per call through /mcp over a kept SDK session':58} "
          + " ".join(f"{p50(federated[era]) - p50(kept[era]):11.2f}" for era, _, _ in ERAS))  # fmt: skip
    print(f"{'/mcp call / kept SDK session call':58} "
          + " ".join(f"{p50(federated[era]) / p50(kept[era]):10.1f}x" for era, _, _ in ERAS))  # fmt: skip
    print(f"\n== Throughput, {args.connections} concurrent callers, {args.seconds}s each ==")
    print(f"{'req/s':58} {'2025-11-25':>11} {'2026-07-28':>11}")
    print(f"{'SDK client sessions -> remote (uvicorn, 1 worker)':58} "
          + " ".join(f"{direct_rps[era]:11.0f}" for era, _, _ in ERAS))  # fmt: skip
    print(f"{'/mcp -> remote (gunicorn -w 2)':58} "
          + " ".join(f"{through[era]['rps']:11.0f}" for era, _, _ in ERAS))  # fmt: skip
    print(f"{'throughput ratio /mcp / direct':58} "
          + " ".join(f"{through[era]['rps'] / direct_rps[era]:10.2f}x" for era, _, _ in ERAS))  # fmt: skip
    print(f"{'errors during the /mcp load':58} "
          + " ".join(f"{through[era]['errors']:11.0f}" for era, _, _ in ERAS))  # fmt: skip
    print("\n== Checking a remote answer against its pinned output schema (compiled jsonschema validator) ==")
    legacy_p50 = p50(federated["2025-11-25"])
    print(f"  small answer ({{text}}): {small_us:.1f} us per answer "
          f"({small_us / 1000 / legacy_p50 * 100:.2f}% of a federated call)")  # fmt: skip
    print(f"  200-row answer: {rows_us:.1f} us per answer")


if __name__ == "__main__":
    main()
