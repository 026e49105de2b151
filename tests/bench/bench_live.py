"""Live push (issue 14, section 3): the stream process (uvicorn askpro.stream:application) holding
200 open Server-Sent Events streams: its resident memory idle and with the streams open, the
delivery latency from a publish on Redis to the event's arrival in each client (p50 / p99), and
/mcp throughput of the web process (gunicorn) with and without those streams and events, measured
side by side in alternating slices.

    .venv/bin/python -m tests.bench.bench_live [--clients 200] [--events 50] [--seconds 12] [--rounds 4]

The clients are raw asyncio connections in this process (one loop, like a browser's one socket
each); the publisher is a thread here running the project's own publish script, so publish and
receipt are timed on one clock. The stream process is separate from the web process: it shares the
machine's two cores with it, which is what the /mcp comparison shows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Iterator

from tests.bench.bench_mcp import check_once, lift_demo_rate_limit, tools_call
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

SESSION_CODE = """
from django.contrib.auth import get_user_model, SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
user = get_user_model().objects.create_superuser("bench-live", "b@example.com", "bench-live-pw-1")
s = SessionStore()
s[SESSION_KEY] = str(user.pk)
s[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
s[HASH_SESSION_KEY] = user.get_session_auth_hash()
s.create()
print(s.session_key)
"""


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        lines = status.read().splitlines()
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@contextlib.contextmanager
def stream_server(database_url: str, **extra: str) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = bench_env(database_url, DJANGO_SETTINGS_MODULE="tests.bench.settings", **extra)
    command = [PYTHON, "-m", "uvicorn", "askpro.stream:application", "--host", "127.0.0.1",
               "--port", str(port), "--no-access-log", "--log-level", "warning"]  # fmt: skip
    with served(command, env=env, probe=f"http://127.0.0.1:{port}/health/live") as base:
        yield base, port


def stream_pid(port: int) -> int:
    """The uvicorn process listening on the port (served() keeps the Popen to itself)."""
    import subprocess

    out = subprocess.run(
        ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    return int(out.split("pid=")[1].split(",")[0])


class Clients:
    """N open streams in one asyncio loop in a process of their own (so that they do not slow the
    /mcp load generator of this process), recording each event's arrival (CLOCK_MONOTONIC, the
    same clock in every process of the machine)."""

    def __init__(self, port: int, cookie: str, count: int) -> None:
        import multiprocessing

        self.port, self.cookie, self.count = port, cookie, count
        self.pipe, child = multiprocessing.Pipe()
        self.proc = multiprocessing.get_context("fork").Process(
            target=self._child, args=(child,), daemon=True
        )

    def __enter__(self) -> Clients:
        self.proc.start()
        if not self.pipe.poll(120):
            raise RuntimeError("the streams did not open")
        self.opened, self.refused = self.pipe.recv()
        return self

    def collect(self) -> dict[int, list[float]]:
        """Each event id's arrival times, so far."""
        self.pipe.send("report")
        return self.pipe.recv()

    def __exit__(self, *exc) -> None:
        self.pipe.send("stop")
        self.proc.join(30)
        if self.proc.is_alive():
            self.proc.kill()

    def _child(self, pipe) -> None:
        asyncio.run(self._main(pipe))

    async def _main(self, pipe) -> None:
        arrivals: dict[int, list[float]] = {}
        counts = {"opened": 0, "refused": 0}
        writers = []
        ready = asyncio.Event()

        async def one() -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            writers.append(writer)
            writer.write(
                f"GET /admin/live/events HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: sessionid={self.cookie}\r\n\r\n".encode()
            )
            status = (await reader.readline()).split()[1]
            counts["opened" if status == b"200" else "refused"] += 1
            if counts["opened"] + counts["refused"] == self.count:
                ready.set()
            if status != b"200":
                return
            while line := await reader.readline():
                if line.startswith(b"id: "):
                    arrivals.setdefault(int(line[4:]), []).append(time.perf_counter())

        tasks = []
        for _ in range(self.count):
            tasks.append(asyncio.create_task(one()))
            await asyncio.sleep(0.002)  # a page load rate, not a SYN flood
        await ready.wait()
        pipe.send((counts["opened"], counts["refused"]))
        loop = asyncio.get_running_loop()
        while True:
            await loop.run_in_executor(None, pipe.poll, None)
            if pipe.recv() == "stop":
                break
            pipe.send(arrivals)
        for writer in writers:
            writer.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def publisher(env: dict[str, str]):
    """The project's publish script on the bench's Redis, under the stream's key prefix."""
    import redis

    from mcp_core.live import _PUBLISH

    prefix = env["CACHE_KEY_PREFIX"]
    client = redis.Redis.from_url(env["REDIS_URL"])
    script = client.register_script(_PUBLISH)
    keys = [f"{prefix}:1:live:seq", f"{prefix}:1:live:backlog", f"{prefix}:1:live:events"]

    def publish(n: int) -> int:
        body = json.dumps({"type": "breaker", "service": "bench", "from": "closed", "to": "open", "n": n})
        return int(script(keys=keys, args=[body, 200, 0, 0]))

    return publish, lambda: client.delete(*keys[:2])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=12, help="/mcp load per side, split into the rounds")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    sys.path.insert(0, os.getcwd())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.bench.settings")

    with bench_database() as database_url:
        run_manage(["seed_demo"], database_url=database_url)
        lift_demo_rate_limit(database_url)
        raw_key = run_manage(
            ["create_api_key", "--platform", "--scopes", "*", "--name", "bench"], database_url=database_url
        ).strip()
        cookie = run_manage(["shell", "-c", SESSION_CODE], database_url=database_url).strip().splitlines()[-1]
        env = bench_env(database_url, LIVE_STREAM_MAX_CLIENTS=str(args.clients + 10))
        publish, cleanup = publisher(env)
        body, headers = tools_call("echo_echo", {"text": "hi"}, modern=False)
        headers = {**headers, "Authorization": f"Bearer {raw_key}"}
        slice_seconds = max(1, round(args.seconds / args.rounds))
        mcp = {
            "no stream open": [],
            f"{args.clients} streams open, quiet": [],
            f"{args.clients} streams open, an event to all every 100 ms": [],
        }
        try:
            with (
                stream_server(database_url, LIVE_STREAM_MAX_CLIENTS=str(args.clients + 10)) as (_, port),
                gunicorn(database_url, workers=2) as web,
            ):
                pid = stream_pid(port)
                check_once(web + "/mcp", body, headers)
                idle_rss = rss_kib(pid)
                latencies: list[float] = []
                sent: dict[int, float] = {}
                with Clients(port, cookie, args.clients) as clients:
                    time.sleep(1)
                    open_rss = rss_kib(pid)
                    for n in range(args.events):
                        started = time.perf_counter()
                        sent[publish(n)] = started
                        time.sleep(0.05)
                    time.sleep(1)
                    arrived = clients.collect()
                    for event_id, at in sent.items():
                        latencies += [(t - at) * 1000 for t in arrived.get(event_id, [])]
                    delivered = sum(len(arrived.get(i, [])) for i in sent)
                    after_rss = rss_kib(pid)
                    opened, refused = clients.opened, clients.refused

                # /mcp alternating: no stream open, and every stream open with an event to all of
                # them every 100 ms (the streams reopened for each such slice).
                def slice_with_streams(events: bool) -> dict[str, float]:
                    with Clients(port, cookie, args.clients):
                        done = threading.Event()

                        def trickle() -> None:
                            n = 0
                            while events and not done.is_set():
                                publish(n)
                                n += 1
                                time.sleep(0.1)

                        pump = threading.Thread(target=trickle, daemon=True)
                        pump.start()
                        try:
                            return load(web + "/mcp", method="POST", body=body, headers=headers,
                                        seconds=slice_seconds, connections=args.connections)  # fmt: skip
                        finally:
                            done.set()
                            pump.join()

                names = list(mcp)
                for round_number in range(args.rounds):
                    # Rotate which configuration goes first, so none always follows another.
                    shift = round_number % len(names)
                    for name in names[shift:] + names[:shift]:
                        if name == names[0]:
                            result = load(web + "/mcp", method="POST", body=body, headers=headers,
                                          seconds=slice_seconds, connections=args.connections)  # fmt: skip
                        else:
                            result = slice_with_streams(events=name == names[2])
                        mcp[name].append(result)
        finally:
            cleanup()

    expected = opened * len(sent)
    print(
        f"\n== live push: the stream process with {args.clients} clients; {args.events} events, 50 ms apart =="
    )
    print(f"{'measure':60} {'value':>14}")
    rows = [
        ("streams open / refused", f"{opened} / {refused}"),
        ("stream process RSS, no client (MiB)", f"{idle_rss / 1024:.1f}"),
        (f"stream process RSS, {opened} streams open (MiB)", f"{open_rss / 1024:.1f}"),
        ("  per stream (KiB)", f"{(open_rss - idle_rss) / max(opened, 1):.1f}"),
        (f"stream process RSS after {len(sent)} events (MiB)", f"{after_rss / 1024:.1f}"),
        ("events delivered / expected", f"{delivered} / {expected}"),
        ("publish -> client latency p50 (ms)", f"{statistics.median(latencies):.2f}" if latencies else "-"),
        ("publish -> client latency p99 (ms)", f"{percentile(latencies, 0.99):.2f}" if latencies else "-"),
        ("publish -> client latency max (ms)", f"{max(latencies):.2f}" if latencies else "-"),
    ]
    for label, value in rows:
        print(f"{label:60} {value:>14}")

    tool = "wrk -t1" if have_wrk() else "python keep-alive client"
    print(
        f"\n== /mcp tools/call echo_echo on gunicorn -w 2 while the stream process serves, {tool} -c{args.connections} =="
    )
    print(f"{'configuration':60} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    totals = {}
    for name, results in mcp.items():
        requests = sum(r["requests"] for r in results)
        totals[name] = requests / (slice_seconds * len(results))
        print(
            f"{name:60} {totals[name]:8.0f} {statistics.median(r['p50_ms'] for r in results):8.2f} "
            f"{max(r['p99_ms'] for r in results):8.2f} {sum(r['errors'] for r in results):7.0f}"
        )
    names = list(mcp)
    print(
        f"  quiet streams / none: {totals[names[1]] / totals[names[0]]:.3f}; "
        f"events flowing / none: {totals[names[2]] / totals[names[0]]:.3f} (the simulated browsers "
        "run on this machine too)"
    )
    if delivered != expected:
        raise SystemExit(f"events lost: {delivered} of {expected} delivered")


if __name__ == "__main__":
    main()
