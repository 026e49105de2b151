"""The reminder sweep: how long 100,000 due appointment reminders take, handed out in bulk and
sent by real Celery workers through the pipeline and messaging.send_batch to the Twilio sandbox,
against the bare Twilio requests alone; and what the workflow adds to a Twilio status callback.

    .venv/bin/python -m tests.bench.bench_reminders [--appointments 100000] [--workers 2]
        [--threads 2] [--chunk 500] [--concurrency 4] [--iterations 1000]

1. Hand-out alone: `notifications.services.sweep` moving every due reminder planned -> queued
   (SELECT ... FOR UPDATE SKIP LOCKED + one UPDATE per batch) with the tasks collected, not run.
2. Sweep and send: the same reminders planned again, one sweep queues them in chunks of
   `--chunk` to `--workers` worker processes (`--threads` each) on a Redis broker with its own
   queue and key prefix; timed until every reminder is `sent`. Each chunk: one claim, one
   messaging.send_batch call through the pipeline (one audit row; `--concurrency` Twilio requests
   in flight on kept-alive connections), one Notification upsert, one Reminder UPDATE.
   Target: under 60 s.
3. Baseline, side by side: the same number of messages sent straight to the same sandbox through
   the same client code (messaging.client.create_many: the twilio library's asynchronous
   interface, same batch size and concurrency) from as many processes, with no pipeline and no
   database. The sweep's time over this is what the workflow costs above the bare requests.
4. Status callbacks: bench_messaging's in-process measurement (POST /webhooks/twilio against the
   bare view, and applying a stored callback) on messages that each have a Notification row,
   so the apply side includes the workflow's receiver (one UPDATE of the Notification).

The sandbox runs in this process, in threads (one per connection), so a few connections serve it
best on two cores (`--concurrency 4`; against Twilio itself, with 100-300 ms per request, the
deployment default MESSAGING_BATCH_CONCURRENCY=16 fits better). Everything runs in a throw-away
database; the workers and the sandbox are stopped by pid / in process. The machine is shared:
read the figures with its load average, printed at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import signal
import subprocess
import time
import uuid

from tests.bench import bench_messaging

TENANT = "bench-reminders"
PHONE_BASE = 4915100000000


def seed(count: int, twilio) -> None:
    """One tenant (a plan whose rate limit does not bind), its Twilio account on the sandbox, and
    `count` customers, each with an appointment tomorrow and one due reminder."""
    from django.utils import timezone

    from askpro.models import Appointment, Company, Customer, Plan
    from mcp_servers.messaging.models import MessagingAccount
    from notifications.models import NotificationSettings, Reminder

    plan = Plan.objects.create(code="bench-unlimited", name="Bench", requests_per_minute=100_000_000,
                               max_concurrent_calls=10_000)  # fmt: skip
    company = Company.objects.create(name="Bench Salon", slug=TENANT, plan=plan)
    sid, token = twilio.add_account(friendly_name="Bench account")
    MessagingAccount.objects.create(company=company, account_sid=sid, auth_token=token, sender="+4930111111",
                                    quiet_hours_start=None, quiet_hours_end=None)  # fmt: skip
    NotificationSettings.objects.create(company=company, channel_order="sms", reminder_offsets="24h")
    now = timezone.now()
    starts = now + dt.timedelta(hours=23, minutes=59)
    step = 5000
    for first in range(0, count, step):
        n = min(step, count - first)
        customers = Customer.objects.bulk_create(
            [
                Customer(company=company, name=f"Customer {first + i}", phone=f"+{PHONE_BASE + first + i}")
                for i in range(n)
            ]  # fmt: skip
        )
        appointments = Appointment.objects.bulk_create(
            [
                Appointment(
                    company=company, customer=c, starts_at=starts, ends_at=starts + dt.timedelta(minutes=30)
                )
                for c in customers
            ]  # fmt: skip
        )
        Reminder.objects.bulk_create(
            [
                Reminder(
                    company=company,
                    appointment=a,
                    offset_minutes=1440,
                    generation=1,
                    starts_at=starts,
                    due_at=now - dt.timedelta(minutes=1),
                )
                for a in appointments
            ]  # fmt: skip
        )


def bare_twilio(twilio, n: int, processes: int, env: dict[str, str]) -> float:
    """The baseline: the same number of messages straight to the sandbox through the twilio
    library's asynchronous interface (messaging's create_many: the batch path's requests,
    concurrency and connections), from `processes` processes, nothing else (no pipeline, no
    database). Seconds for all of them."""
    from tests.bench.harness import PYTHON, ROOT

    sid, token = twilio.add_account(friendly_name="Baseline account")
    share = n // processes
    started = time.perf_counter()
    children = [
        subprocess.Popen(
            [
                PYTHON,
                "-m",
                "tests.bench.bench_reminders",
                "--bare-child",
                sid,
                token,
                str(i * share),
                str(share),
            ],
            cwd=ROOT,
            env=env,
        )  # fmt: skip
        for i in range(processes)
    ]
    codes = [child.wait(timeout=3600) for child in children]
    assert codes == [0] * processes, codes
    return time.perf_counter() - started


def bare_child(sid: str, token: str, first: int, count: int) -> None:
    """One baseline process: `count` messages in batches of 500, as a send task's batch."""
    import django

    django.setup()
    from django.conf import settings

    from mcp_servers.messaging.client import TwilioAccount, create_many

    account = TwilioAccount(sid, token, "+4930111111", "")
    for start in range(first, first + count, 500):
        messages = [{"to": f"+{PHONE_BASE + i}", "from_": "+4930111111", "body": "Erinnerung: Ihr Termin"}
                    for i in range(start, min(start + 500, first + count))]  # fmt: skip
        answers = create_many(account, messages, deadline=time.monotonic() + 600,
                              concurrency=settings.MESSAGING_BATCH_CONCURRENCY)  # fmt: skip
        assert not any(isinstance(a, Exception) for a in answers), answers[:3]


def start_worker(index: int, threads: int, env: dict[str, str], queue: str) -> subprocess.Popen:
    """One worker process with a thread pool: a send mostly waits (PostgreSQL, Redis, the
    sandbox), so threads overlap those waits the way a deployment's worker concurrency would."""
    from tests.bench.harness import PYTHON, ROOT

    log = open(f"/tmp/bench-reminders-{os.getpid()}.log", "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [PYTHON, "-m", "celery", "-A", "askpro", "worker", "-P", "threads", "-c", str(threads), "-Q", queue,
         "-n", f"bench{index}-{os.getpid()}@%h", "--without-gossip", "--without-mingle", "-l", "WARNING"],
        cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True,
    )  # fmt: skip


def process_cpu(pids: list[int], *, children: bool = False) -> float:
    """User and system CPU seconds the processes have used so far (Linux /proc); with
    `children`, also that of their children that have exited."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        total += sum(int(f) for f in fields[11 : 15 if children else 13]) / ticks
    return total


def postgres_cpu() -> float:
    """CPU seconds of the machine's PostgreSQL processes, exited backends and autovacuum workers
    included (counted in the postmaster's children's time). 0 where it runs elsewhere."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/comm") as handle:
                if handle.read().strip() == "postgres":
                    pids.append(int(entry))
        except (OSError, ValueError):
            continue
    return process_cpu(pids, children=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the worker and its pool children
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def purge(broker: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(broker)
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--appointments", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (one per core)")
    parser.add_argument("--threads", type=int, default=2, help="threads per worker process")
    parser.add_argument(
        "--chunk", type=int, default=500, help="reminders per send task (one batch per tenant)"
    )
    parser.add_argument("--iterations", type=int, default=1000, help="status callbacks measured in process")
    parser.add_argument("--concurrency", type=int, default=4, help="Twilio requests in flight per batch")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--bare-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_child:
        sid, token, first, count = args.bare_child
        bare_child(sid, token, int(first), int(count))
        return

    from mcp_servers.messaging.sandbox import TwilioSandbox
    from tests.bench.harness import bench_database, bench_env

    twilio = TwilioSandbox(demo=False).start()
    tag = f"askpro-bench-rem-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    queue, prefix = f"{tag}-q", f"{tag}:"
    extra = {
        "TWILIO_API_BASE": twilio.url,
        "MESSAGING_PUBLIC_URL": bench_messaging.PUBLIC_URL,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "CELERY_KEY_PREFIX": prefix,
        "REMINDERS_SWEEP_SECONDS": "3600",
        "REMINDERS_SEND_CHUNK": str(args.chunk),
        "MESSAGING_BATCH_CONCURRENCY": str(args.concurrency),
        # Twilio status callbacks would go to the public URL: none are delivered in this bench.
    }
    workers: list[subprocess.Popen] = []
    try:
        with bench_database() as database_url:
            env = bench_env(database_url, **extra)
            os.environ.update(env)
            import django

            django.setup()
            from django.db import connections
            from django.db.models import Count

            from notifications import services
            from notifications.models import Notification, Reminder

            n = args.appointments
            started = time.perf_counter()
            seed(n, twilio)
            print(
                f"seeded {n} customers, appointments and due reminders in {time.perf_counter() - started:.1f} s"
            )

            # The sandbox (Twilio's stand-in) serves from this process: its garbage collector
            # need not walk Django and the seed's leftovers again and again, as a worker's does
            # not (askpro.celery.freeze_startup_objects).
            gc.collect()
            gc.freeze()

            # 1. hand-out alone
            handed: list[list[int]] = []
            started = time.perf_counter()
            counts = services.sweep(dispatch=handed.append)
            handout = time.perf_counter() - started
            assert counts["queued"] == n, counts
            print("\n== Reminder sweep ==")
            print(f"{'phase':52} {'seconds':>9} {'reminders/s':>12}")
            print(f"{'hand-out alone (planned -> queued, bulk claim)':52} {handout:9.2f} {n / handout:12.0f}"
                  f"   ({counts['chunks']} tasks of {env.get('REMINDERS_SEND_CHUNK', 50)})")  # fmt: skip
            Reminder.objects.update(status="planned", queued_at=None)

            # 2. sweep and send with real workers
            connections.close_all()
            workers = [start_worker(i, args.threads, env, queue) for i in range(args.workers)]
            from askpro.celery import app

            deadline = time.monotonic() + 60
            while len(app.control.ping(timeout=0.5)) < args.workers:
                if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
                    raise RuntimeError(
                        "the bench's Celery workers did not start; see /tmp/bench-reminders-*.log"
                    )
            started = time.perf_counter()
            cpu_before = process_cpu([w.pid for w in workers]), time.process_time(), postgres_cpu()
            services.sweep()
            # Done when no reminder is open, asked of the partial indexes of open rows: counting
            # the sent ones instead scanned the whole table twice a second (at 100,000 about 13 of
            # the database's 48 CPU seconds, and 16 s of the sweep's time).
            while time.perf_counter() - started < args.timeout:
                planned = Reminder.objects.filter(status="planned").exists()  # reminder_due
                if not planned and not Reminder.objects.filter(status__in=["queued", "sending"]).exists():
                    break
                time.sleep(0.5)
            total = time.perf_counter() - started
            sent = Reminder.objects.filter(status="sent").count()
            worker_cpu = process_cpu([w.pid for w in workers]) - cpu_before[0]
            main_cpu = time.process_time() - cpu_before[1]
            database_cpu = postgres_cpu() - cpu_before[2]
            posts = len([r for r in twilio.requests_to(r"/Messages\.json$") if r.method == "POST"])
            twilio.request_log.clear()  # the baseline's requests are not the sweep's
            label = f"sweep and send, {args.workers} workers x {args.threads} threads x {args.concurrency}"
            rate = sent / total
            print(f"{label:52} {total:9.2f} {rate:12.0f}")
            print(f"   CPU meanwhile: workers {worker_cpu:.1f} s, this process (sandbox, polling) {main_cpu:.1f} s, "
                  f"PostgreSQL {database_cpu:.1f} s, of {(os.cpu_count() or 1) * total:.1f} core-seconds")  # fmt: skip
            for worker in workers:
                stop(worker)
            workers = []
            connections.close_all()
            bare = bare_twilio(twilio, n, args.workers, env)
            print(f"{'baseline: the bare Twilio requests alone (no pipeline, no DB)':52} {bare:9.2f} {n / bare:12.0f}"
                  f"   sweep and send = {total / bare:.2f}x baseline")  # fmt: skip
            # The target is for 100,000 reminders; a smaller run is projected at its own rate.
            projected = total if n == 100_000 else 100_000 / rate if rate else float("inf")
            met = "met" if projected < 60 and sent == n else "missed"
            how = "measured" if n == 100_000 else f"projected from {n}"
            print(f"target (100,000 in under 60 s): {met}, {projected:.0f} s {how}")
            by_status = dict(
                Reminder.objects.values_list("status").annotate(c=Count("pk")).values_list("status", "c")
            )
            print(
                f"reminders by status: {by_status}; Twilio sandbox received {posts} messages for {n} reminders"
            )
            for worker in workers:
                stop(worker)
            workers = []

            # 3. status callbacks: bench_messaging's measurement, the workflow's receiver included
            from askpro.models import Company
            from mcp_servers.messaging.models import Message

            bench_messaging.seed(args.iterations + 50)
            company = Company.objects.get(slug=bench_messaging.TENANT)
            Notification.objects.bulk_create(
                [Notification(company=company, kind="reminder", channel="sms", status="sent", service="messaging",
                              message_id=pk, recipient="+4915112345678", idempotency_key=f"bench:{pk}")
                 for pk in Message.objects.filter(company=company).values_list("pk", flat=True)],
                batch_size=2000,
            )  # fmt: skip
            bench_messaging.in_process(args.iterations)
            updated = Notification.objects.filter(company=company).exclude(status="sent").count()
            print(f"Notification rows moved by the callbacks' statuses: {updated}")
            connections.close_all()
    finally:
        for worker in workers:
            stop(worker)
        twilio.stop()
        purge(redis_url, prefix)
    with open("/proc/loadavg") as handle:
        print(f"machine load average after the run: {handle.read().split()[:3]}")


if __name__ == "__main__":
    main()
