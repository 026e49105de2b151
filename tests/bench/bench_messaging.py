"""Twilio status callbacks: the acknowledgement throughput of POST /webhooks/twilio (verify
X-Twilio-Signature over the public URL, find the tenant, store, enqueue) against a bare Django
view taking the same form POST, on the same gunicorn; plus the in-process cost per request and
the cost of applying one stored callback (the queue's side).

    .venv/bin/python -m tests.bench.bench_messaging [--seconds 6] [--rounds 3] [--workers 2] [--connections 8]

Load comes from two generator processes (closed loop, keep-alive connections), each request a
distinct, correctly signed callback (a message's sent and delivered), so no delivery is a
duplicate. Endpoints alternate in rounds so both see the same machine conditions; the ratio is
what carries over between machines.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from urllib.parse import urlsplit

PUBLIC_URL = "https://askpro.bench.example"  # what Twilio would call; signatures cover it
TENANT = "bench-salon"
TOKEN = "bench_twilio_auth_token_0123456789"  # noqa: S105 - bench-only credential
ACCOUNT_SID = "AC" + "b" * 32


def prepared_callbacks(count: int, offset: int = 0) -> list[tuple[str, bytes, dict[str, str]]]:
    """Distinct signed status callbacks for messages SM…{offset}…{offset+count/2}."""
    from mcp_servers.messaging.sandbox import signed_request

    out = []
    path = f"/webhooks/twilio?tenant={TENANT}"
    for i in range(count):
        sid = f"SM{offset + i // 2:032x}"
        status = ("sent", "delivered")[i % 2]
        params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": ACCOUNT_SID, "From": "+4930111111",
                  "To": "+4915112345678", "MessageStatus": status, "SmsStatus": status, "ApiVersion": "2010-04-01"}  # fmt: skip
        headers, body = signed_request(PUBLIC_URL + path, params, TOKEN)
        out.append(
            (
                path,
                body,
                {
                    "X-Twilio-Signature": headers["X-Twilio-Signature"],
                    "Content-Type": headers["Content-Type"],
                },
            )
        )
    return out


# --- the load generator (its own process) ---
def loadgen(url: str, requests_file: str, seconds: float, connections: int) -> dict:
    import http.client

    with open(requests_file) as handle:
        prepared = [(p, b.encode("latin-1"), h) for p, b, h in json.load(handle)]
    parts = urlsplit(url)
    lock = threading.Lock()
    cursor = [0]
    done: list[int] = []
    errors = [0]
    stop_at = time.monotonic() + seconds

    def worker() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        count = 0
        while time.monotonic() < stop_at:
            with lock:
                i = cursor[0]
                cursor[0] += 1
            if i >= len(prepared):
                break
            path, body, headers = prepared[i]
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status >= 300:
                    errors[0] += 1
            except Exception:
                errors[0] += 1
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
            count += 1
        with lock:
            done.append(count)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    return {
        "requests": sum(done),
        "seconds": elapsed,
        "errors": errors[0],
        "exhausted": cursor[0] >= len(prepared),
    }


def run_load(base: str, requests: list, seconds: float, connections: int, processes: int = 2) -> dict:
    """`processes` generator processes, each with its own share of the prepared requests."""
    share = len(requests) // processes
    files, procs = [], []
    try:
        for n in range(processes):
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
                share_of = requests[n * share : (n + 1) * share]
                json.dump([(p, b.decode("latin-1"), h) for p, b, h in share_of], handle)
            files.append(handle.name)
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "tests.bench.bench_messaging", "--loadgen", handle.name, "--url", base,
                 "--seconds", str(seconds), "--connections", str(connections)],
                stdout=subprocess.PIPE, text=True,
            ))  # fmt: skip
        results = [json.loads(proc.communicate()[0].strip().splitlines()[-1]) for proc in procs]
    finally:
        for name in files:
            os.unlink(name)
    total = sum(r["requests"] for r in results)
    elapsed = max(r["seconds"] for r in results)
    return {"rps": total / elapsed, "requests": total, "errors": sum(r["errors"] for r in results),
            "exhausted": any(r["exhausted"] for r in results)}  # fmt: skip


# --- in process ---
def in_process(iterations: int) -> None:
    from django.test import Client

    from mcp_servers.webhooks.models import WebhookEvent
    from mcp_servers.webhooks.services import webhook_process

    client = Client(SERVER_NAME="127.0.0.1")
    callbacks = prepared_callbacks(iterations + 50, offset=10_000_000)

    def headers(h):
        return {"HTTP_X_TWILIO_SIGNATURE": h["X-Twilio-Signature"]}

    def per_call_us(send) -> float:
        for i in range(50):
            send(i)
        started = time.perf_counter()
        for i in range(50, iterations + 50):
            send(i)
        return (time.perf_counter() - started) / iterations * 1e6

    def bare(i):
        path, body, h = callbacks[i]
        assert client.post("/bench/bare", body, content_type=h["Content-Type"]).status_code == 200

    def ack(i):
        path, body, h = callbacks[i]
        r = client.post(path, body, content_type=h["Content-Type"], **headers(h))
        assert r.status_code == 202, r.content

    bare_us = per_call_us(bare)
    ack_us = per_call_us(ack)
    pending = list(
        WebhookEvent.objects.filter(provider="twilio", status="received").values_list("pk", flat=True)
    )
    started = time.perf_counter()
    for pk in pending:
        webhook_process(pk)
    apply_us = (time.perf_counter() - started) / max(len(pending), 1) * 1e6
    processed = WebhookEvent.objects.filter(pk__in=pending, status="processed").count()
    print(f"\n== In process, per request through the Django stack ({iterations} requests each) ==")
    print(f"{'request':44} {'µs':>9} {'req/s (1 core)':>15} {'vs bare':>8}")
    for name, us in (
        ("bare Django view, same form POST", bare_us),
        ("POST /webhooks/twilio status callback (ack)", ack_us),
    ):
        print(f"{name:44} {us:9.0f} {1e6 / us:15.0f} {us / bare_us:7.2f}x")
    print(
        f"{'apply one stored callback (queue side)':44} {apply_us:9.0f} {1e6 / apply_us:15.0f}   ({processed}/{len(pending)} processed)"
    )


def seed(messages: int) -> None:
    from askpro.models import Company
    from mcp_servers.messaging.models import Message, MessagingAccount

    company = Company.objects.create(name="Bench Salon", slug=TENANT)
    MessagingAccount.objects.create(
        company=company, account_sid=ACCOUNT_SID, auth_token=TOKEN, sender="+4930111111"
    )
    rows = [Message(company=company, channel="sms", direction="outbound", customer_number="+4915112345678",
                    body="bench", twilio_sid=f"SM{offset + i:032x}", status="queued", status_rank=2, price=0.079,
                    price_unit="USD")
            for offset in (0, 10_000_000) for i in range(messages)]  # fmt: skip
    Message.objects.bulk_create(rows, batch_size=2000)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8, help="per generator process (2 processes)")
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--loadgen")
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.loadgen:
        print(json.dumps(loadgen(args.url, args.loadgen, args.seconds, args.connections)))
        return

    from tests.bench.harness import bench_database, bench_env, gunicorn

    tag = f"askpro-bench-msg-{os.getpid()}"
    extra = {
        "MESSAGING_PUBLIC_URL": PUBLIC_URL,
        # A real Redis broker with its own queue and prefix and no worker: the acknowledgement
        # includes the enqueue; applying is measured in process.
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
        "CELERY_TASK_DEFAULT_QUEUE": f"{tag}-q",
        "CELERY_KEY_PREFIX": f"{tag}:",
    }
    # Enough distinct callbacks that no round runs out (two statuses per message).
    per_round = int(args.seconds / args.rounds * 2500)
    with bench_database() as database_url:
        os.environ.update(bench_env(database_url, **extra))
        import django

        django.setup()
        from django.db import connections

        from mcp_servers.webhooks.models import WebhookEvent

        seed(max(per_round * args.rounds, args.iterations + 50))
        in_process(args.iterations)
        connections.close_all()
        callbacks = prepared_callbacks(per_round * args.rounds * 2)
        try:
            with gunicorn(database_url, workers=args.workers, **extra) as base:
                bare_requests = [("/bench/bare", body, h) for _, body, h in callbacks[:per_round]]
                run_load(base, bare_requests[:200], 1, 2)  # warm every worker
                slice_s = args.seconds / args.rounds
                results: dict[str, list[dict]] = {"bare": [], "callback": []}
                for n in range(args.rounds):
                    results["bare"].append(run_load(base, bare_requests, slice_s, args.connections))
                    chunk = callbacks[n * per_round * 2 : (n + 1) * per_round * 2]
                    results["callback"].append(run_load(base, chunk, slice_s, args.connections))
                print(
                    f"\n== Throughput over HTTP: gunicorn -w {args.workers}, DEBUG off, PostgreSQL, Redis broker; "
                    f"2 generator processes x {args.connections} connections, {args.rounds} alternating rounds of {slice_s:.1f}s =="
                )
                bare_rps = sum(r["rps"] for r in results["bare"]) / args.rounds
                print(f"{'endpoint':50} {'req/s':>8} {'errors':>7} {'vs bare':>8}")
                for kind, name in (("bare", "POST /bench/bare (bare Django view)"),
                                   ("callback", "POST /webhooks/twilio (status callback ack)")):  # fmt: skip
                    rps = sum(r["rps"] for r in results[kind]) / args.rounds
                    errors = sum(r["errors"] for r in results[kind])
                    print(f"{name:50} {rps:8.0f} {errors:7d} {rps / bare_rps:7.2f}x")
                    if any(r["exhausted"] for r in results[kind]):
                        print(f"  (ran out of prepared requests for {kind}: raise the per-round count)")
                stored = WebhookEvent.objects.filter(provider="twilio").count()
                print(f"status callbacks stored over HTTP and in process: {stored}")
                with open("/proc/loadavg") as handle:
                    print(f"machine load average after the run: {handle.read().split()[:3]}")
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
