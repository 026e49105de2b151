"""Google Calendar: what the gcal server adds to hot paths, side by side in one run.

1. Building one Calendar API request with google-api-python-client: the library's resource
   made afresh (build_from_document + .events(), what a naive client does per call) against
   the service and resources the client keeps per thread and credential. No network: the
   request object is built, not sent.
2. Busy time on the availability path (mcp_core.busy_time, the gcal source reading stored busy
   blocks): filtering a day's 16 Cal.com slots for a tenant with three staff calendars of
   `--blocks` blocks each, against the same filter with no source registered (the floor), and
   the per-call check of the inbound-call answer (`tenant_has_busy_time`).

    .venv/bin/python -m tests.bench.bench_gcal [--repeat 5] [--blocks 200]

Rounds alternate the two sides so both see the same machine; the ratios carry over.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import time

from tests.bench.harness import bench_database, bench_env


def per_call_ms(fn, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) * 1000 / calls


def request_building(repeat: int) -> tuple[float, float]:
    from django.conf import settings
    from googleapiclient.discovery import build_from_document

    from mcp_servers.gcal import client
    from mcp_servers.gcal.discovery import document

    auth = client.GoogleAuth("oauth", "1//bench-refresh-token")

    def fresh():
        service = build_from_document(
            document(),
            http=client.google_auth_httplib2.AuthorizedHttp(client.credentials_for(auth)),
            client_options={"api_endpoint": settings.GCAL_API_BASE + "/calendar/v3/"},
        )
        service.events().list(calendarId="staff@example.com", maxResults=250)

    def kept():
        client.calendar_service(auth, 10.0).events().list(calendarId="staff@example.com", maxResults=250)

    kept()
    naive, ours = [], []
    for _ in range(repeat):
        naive.append(per_call_ms(fresh, 20))
        ours.append(per_call_ms(kept, 2000))
    return statistics.median(naive), statistics.median(ours)


def busy_paths(repeat: int, blocks: int) -> dict[str, float]:
    from askpro.models import Branch, Company, Staff
    from mcp_core import busy_time
    from mcp_servers.gcal.models import BusyBlock, CalendarLink

    company = Company.objects.create(name="Bench salon", slug=f"bench-gcal-{os.getpid()}")
    branch = Branch.objects.create(company=company, name="Main", slug="main", calcom_event_type_id=4242)
    day = dt.datetime(2030, 1, 7, 0, 0, tzinfo=dt.UTC)
    for n in range(3):
        staff = Staff.objects.create(company=company, branch=branch, name=f"Staff {n}")
        link = CalendarLink.objects.create(company=company, calendar_id=f"s{n}@bench.example", staff=staff)
        BusyBlock.objects.bulk_create(
            BusyBlock(company=company, calendar=link, event_id=f"e{n}x{i}",
                      starts_at=day + dt.timedelta(hours=i * 2 + n), ends_at=day + dt.timedelta(hours=i * 2 + n + 1))
            for i in range(blocks)
        )  # fmt: skip
    slots = [(day + dt.timedelta(hours=9, minutes=30 * i), day + dt.timedelta(hours=9, minutes=30 * (i + 1)))
             for i in range(16)]  # fmt: skip
    query = busy_time.BusyQuery(company.pk, slots[0][0], slots[-1][1], event_type_id=4242)
    sources, covers = dict(busy_time._sources), dict(busy_time._covers)

    def with_source():
        busy_time.without_busy(slots, query, lambda s: s)

    def covered():
        busy_time.tenant_has_busy_time(company.pk)

    floor, hook, check = [], [], []
    for _ in range(repeat):
        busy_time._sources.clear()
        busy_time._covers.clear()
        floor.append(per_call_ms(with_source, 2000))
        busy_time._sources.update(sources)
        busy_time._covers.update(covers)
        hook.append(per_call_ms(with_source, 300))
        check.append(per_call_ms(covered, 300))
    return {
        "floor": statistics.median(floor),
        "hook": statistics.median(hook),
        "check": statistics.median(check),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--blocks", type=int, default=200, help="busy blocks per staff calendar")
    parser.add_argument("--database", default=None, help="keep this database between runs")
    args = parser.parse_args()
    with bench_database(args.database, keep=bool(args.database)) as database_url:
        os.environ.update(bench_env(database_url))
        import django

        django.setup()
        print(f"load average before: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")
        naive, ours = request_building(args.repeat)
        print("\n== Building one events.list request (median of rounds) ==")
        print(f"  library resource made afresh   {naive:8.3f} ms")
        print(f"  kept per thread and credential {ours:8.3f} ms   ({naive / ours:.0f}x less)")
        busy = busy_paths(args.repeat, args.blocks)
        print(
            f"\n== Busy time on the availability path (16 slots, 3 staff calendars x {args.blocks} blocks) =="
        )
        print(f"  no busy-time source (floor)    {busy['floor']:8.3f} ms")
        print(
            f"  gcal source (stored blocks)    {busy['hook']:8.3f} ms   (+{busy['hook'] - busy['floor']:.3f} ms)"
        )
        print(f"  inbound: tenant_has_busy_time  {busy['check']:8.3f} ms")
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
