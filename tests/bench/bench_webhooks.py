"""Webhook acknowledgement and inbound-call answer latency under a fixed request rate, against
a bare Django view on the same gunicorn (DEBUG off, PostgreSQL, Redis cache and broker).

    .venv/bin/python -m tests.bench.bench_webhooks [--rate 200] [--seconds 8] [--workers 3] [--rounds 4]

The load comes from a second process (this module with --loadgen): an open-loop generator that
sends requests on a fixed schedule over keep-alive connections and measures each latency from
its *scheduled* start, so a stalled server cannot hide its queueing delay (no coordinated
omission). Every webhook delivery is a distinct, correctly signed event. Target (issue 6):
inbound-call answer p99 < 50 ms at 200 requests/s on this 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from urllib.parse import urlsplit

RETELL_KEY = "key_bench_retell"
STRIPE_SECRET = "whsec_bench_secret"


# --- the load generator (runs in its own process) ---
def _request_for(kind: str, to_number: str) -> tuple[str, str, bytes, dict[str, str]]:
    if kind == "bare":
        return "GET", "/bench/bare", b"", {}
    if kind == "inbound":
        from mcp_servers.retell.sandbox import sign_webhook, webhook_body

        body = webhook_body(
            {
                "event": "call_inbound",
                "call_inbound": {
                    "agent_id": "agent_x",
                    "from_number": "+4915112345678",
                    "to_number": to_number,
                },
            }
        )
        return "POST", "/webhooks/retell", body, sign_webhook(body, RETELL_KEY)
    from mcp_servers.stripe.sandbox import make_event, sign_webhook

    event = make_event(
        "invoice.paid", {"id": f"in_{uuid.uuid4().hex[:14]}", "object": "invoice", "customer": "cus_x"}
    )
    body = json.dumps(event, separators=(",", ":")).encode()
    return "POST", "/webhooks/stripe", body, sign_webhook(body, STRIPE_SECRET)


def loadgen(url: str, kind: str, rate: float, seconds: float, to_number: str, connections: int) -> dict:
    import http.client

    parts = urlsplit(url)
    total = int(rate * seconds)
    # Bodies are prepared up front so that signing costs the generator nothing during the run.
    prepared = [_request_for(kind, to_number) for _ in range(total if kind == "stripe" else 1)]
    next_index = [0]
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = [0]
    start = time.perf_counter() + 0.2

    def worker() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        while True:
            with lock:
                i = next_index[0]
                next_index[0] += 1
            if i >= total:
                break
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            method, path, body, headers = prepared[i % len(prepared)]
            try:
                conn.request(method, path, body=body or None, headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except Exception:
                status = 0
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
            elapsed = time.perf_counter() - scheduled
            with lock:
                latencies.append(elapsed)
                statuses[status] = statuses.get(status, 0) + 1
                if status == 0 or status >= 300:
                    errors[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    achieved = len(latencies) / max(time.perf_counter() - start, 1e-9)
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else 0.0

    return {
        "kind": kind,
        "sent": len(latencies),
        "rate": achieved,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": latencies[-1] * 1000 if latencies else 0.0,
        "errors": errors[0],
        "statuses": statuses,
        "latencies_ms": [round(x * 1000, 3) for x in latencies],
    }


def _merge(parts: list[dict]) -> dict:
    latencies = sorted(x for part in parts for x in part["latencies_ms"])
    statuses: dict[str, int] = {}
    for part in parts:
        for status, count in part["statuses"].items():
            statuses[str(status)] = statuses.get(str(status), 0) + count

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0.0

    return {
        "sent": len(latencies),
        "rate": sum(p["rate"] for p in parts) / len(parts),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": latencies[-1] if latencies else 0.0,
        "errors": sum(p["errors"] for p in parts),
        "statuses": statuses,
    }


def run_loadgen_process(url: str, kind: str, rate: float, seconds: float, to_number: str) -> dict:
    """Start the generator as a second process and read its JSON result."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.bench.bench_webhooks",
            "--loadgen",
            kind,
            "--url",
            url,
            "--rate",
            str(rate),
            "--seconds",
            str(seconds),
            "--to-number",
            to_number,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


# --- the benchmark ---
def in_process(number: str, *, iterations: int) -> None:
    """CPU cost per request through the whole Django stack (middleware included), no network:
    less sensitive to a busy machine than the HTTP figures."""
    from django.test import Client

    from mcp_servers.webhooks.models import WebhookEvent

    client = Client(SERVER_NAME="127.0.0.1")
    stripe_requests = [_request_for("stripe", number) for _ in range(iterations + 50)]
    inbound = _request_for("inbound", number)

    def headers(h: dict[str, str]) -> dict[str, str]:
        return {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in h.items() if k.lower() != "content-type"}

    def per_call_us(send) -> float:
        for i in range(50):
            send(i)
        started = time.perf_counter()
        for i in range(50, iterations + 50):
            send(i)
        return (time.perf_counter() - started) / iterations * 1e6

    def bare(i: int) -> None:
        assert client.get("/bench/bare").status_code == 200

    def answer(i: int) -> None:
        r = client.post(
            "/webhooks/retell", inbound[2], content_type="application/json", **headers(inbound[3])
        )
        assert r.status_code == 200

    def ack(i: int) -> None:
        _, _, body, h = stripe_requests[i]
        r = client.post("/webhooks/stripe", body, content_type="application/json", **headers(h))
        assert r.status_code == 202, r.content

    bare_us = per_call_us(bare)
    rows = [
        ("bare Django JSON view", bare_us),
        ("call_inbound answer", per_call_us(answer)),
        ("stripe ack", per_call_us(ack)),
    ]
    print(f"\n== In process, per request through the Django stack ({iterations} requests each) ==")
    print(f"{'request':28} {'µs':>9} {'vs bare':>8}")
    for name, us in rows:
        print(f"{name:28} {us:9.0f} {us / bare_us:7.2f}x")
    WebhookEvent.objects.all().delete()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--workers", type=int, default=3)  # 2 cores; the ack path waits on fsync
    parser.add_argument("--loadgen", choices=["bare", "inbound", "stripe"])
    parser.add_argument("--url")
    parser.add_argument("--to-number", default="")
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=4, help="interleaved slices per endpoint")
    args = parser.parse_args()
    if args.loadgen:
        print(json.dumps(loadgen(args.url, args.loadgen, args.rate, args.seconds, args.to_number, 32)))
        return

    from tests.bench.harness import bench_database, bench_env, gunicorn

    tag = f"askpro-bench-wh-{os.getpid()}"
    extra = {
        "RETELL_API_KEY": RETELL_KEY,
        "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
        # A real Redis broker with its own queue and key prefix and no worker: the
        # acknowledgement includes the enqueue, the processing is not measured here.
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
        "CELERY_TASK_DEFAULT_QUEUE": f"{tag}-q",
        "CELERY_KEY_PREFIX": f"{tag}:",
    }
    with bench_database() as database_url:
        os.environ.update(bench_env(database_url, **extra))
        import django

        django.setup()
        from django.db import connections

        from askpro.demo import seed_demo
        from askpro.models import PhoneNumber
        from mcp_servers.webhooks.models import WebhookEvent

        seed_demo()
        number = PhoneNumber.objects.filter(is_active=True, branch__isnull=False).values_list(
            "number", flat=True
        )[0]
        in_process(number, iterations=args.iterations)
        connections.close_all()
        try:
            with gunicorn(database_url, workers=args.workers, **extra) as base:
                # Warm every worker's connections and the inbound cache entry.
                for kind in ("bare", "inbound", "stripe"):
                    run_loadgen_process(base, kind, 50, 1, number)
                slice_s = args.seconds / args.rounds
                print(
                    f"\n== Webhooks under a fixed rate of {args.rate:.0f} req/s, {args.seconds:.0f}s per endpoint in "
                    f"{args.rounds} interleaved slices (gunicorn -w {args.workers}, DEBUG off, PostgreSQL, Redis; "
                    f"open-loop load from a second process) =="
                )
                kinds = {
                    "bare": "GET /bench/bare (bare Django JSON view)",
                    "inbound": "POST /webhooks/retell call_inbound (answer)",
                    "stripe": "POST /webhooks/stripe (verify+store+enqueue, ack)",
                }
                # Interleaving exposes every endpoint to the same machine conditions (other
                # processes' load comes and goes); the ratios are what carries over.
                slices: dict[str, list[dict]] = {kind: [] for kind in kinds}
                for _ in range(args.rounds):
                    for kind in kinds:
                        slices[kind].append(run_loadgen_process(base, kind, args.rate, slice_s, number))
                results = {kind: _merge(parts) for kind, parts in slices.items()}
                bare = results["bare"]
                print(
                    f"{'endpoint':52} {'sent':>6} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'err':>4} "
                    f"{'p50 vs bare':>11} {'p99 vs bare':>11}"
                )
                for kind, name in kinds.items():
                    r = results[kind]
                    print(
                        f"{name:52} {r['sent']:6d} {r['rate']:7.1f} {r['p50_ms']:7.2f} {r['p99_ms']:7.2f} "
                        f"{r['max_ms']:7.1f} {r['errors']:4d} {r['p50_ms'] / max(bare['p50_ms'], 1e-9):10.2f}x "
                        f"{r['p99_ms'] / max(bare['p99_ms'], 1e-9):10.2f}x"
                    )
                inbound = results["inbound"]
                verdict = "MET" if inbound["p99_ms"] < 50 and inbound["errors"] == 0 else "NOT MET"
                print(
                    f"target inbound p99 < 50 ms at {args.rate:.0f} req/s: {verdict} ({inbound['p99_ms']:.2f} ms; "
                    f"bare view p99 {bare['p99_ms']:.2f} ms in the same slices)"
                )
                for kind in kinds:
                    per_slice = ", ".join(f"{part['p99_ms']:.1f}" for part in slices[kind])
                    print(f"  p99 per slice, {kind}: {per_slice} ms")
                with open("/proc/loadavg") as handle:
                    print(f"machine load average after the run: {handle.read().split()[:3]}")
                stored = WebhookEvent.objects.count()
                print(
                    f"stripe events stored: {stored} (sent {results['stripe']['sent']} + warm-up; "
                    f"statuses {results['stripe']['statuses']})"
                )
        finally:
            connections.close_all()
            import redis

            client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
            for pattern in (f"{tag}:*", f"{os.environ['CACHE_KEY_PREFIX']}:*"):
                keys = list(client.scan_iter(match=pattern, count=1000))
                for i in range(0, len(keys), 500):
                    client.delete(*keys[i : i + 500])


if __name__ == "__main__":
    main()
