"""Analytics and the database server's reads at scale (issue 16 §3): each operation's time against
the best single SQL statement written by hand for the same answer, run directly with psycopg (the
floor), side by side in one run, on 1,000,000 calls and 500,000 appointments across 20 tenants;
the Analytics admin page's server time; and /mcp throughput of database_get_tenant_stats against
the echo tool.

Data: tenants, branches, staff, services and working hours by the ORM; 100,000 customers,
1,000,000 calls over 400 days, 500,000 appointments (one for every second call) and a paid
invoice for every completed appointment by INSERT ... SELECT generate_series, in a throw-away
bench database (or one kept with --database NAME: generated once, reused).

    .venv/bin/python -m tests.bench.bench_analytics [--calls 1000000] [--repeat 3] [--tenants 5]
        [--http-seconds 5] [--database NAME]

Targets: each operation within 2x its floor and under 300 ms; the page under 500 ms; each
database read operation a small fixed number of statements and within 2x its floor.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import time

from tests.bench.harness import bench_database, bench_env

TENANTS = 20
VISITS = "('scheduled', 'confirmed', 'completed')"
HANDLING = """CASE WHEN c.status IN ('registered', 'ongoing') THEN 'in_progress'
     WHEN c.disconnection_reason IN ('call_transfer', 'transfer_bridged', 'call_take_over') THEN 'transferred'
     WHEN c.status = 'error' OR c.disconnection_reason LIKE 'error%%' OR c.disconnection_reason IN
          ('dial_busy', 'dial_failed', 'dial_no_answer', 'concurrency_limit_reached', 'registered_call_timeout',
           'no_valid_payment') THEN 'missed'
     ELSE 'answered' END"""


def _timed(cursor, sql: str, params=None) -> float:
    started = time.perf_counter()
    cursor.execute(sql, params or [])  # always with params: %% is then one %
    return time.perf_counter() - started


def generate(calls: int) -> list[tuple[str, float]]:
    """The records: small tables by the ORM, the big ones by generate_series."""
    from django.db import connection

    from askpro.models import Branch, Company, PhoneNumber, Plan, Service, Staff, WorkingHours

    if Company.objects.filter(slug="tenant-0").exists():
        timings = generate_messages()
        with connection.cursor() as cur:
            timings.append(("(data of an earlier run reused) VACUUM ANALYZE", _timed(cur, "VACUUM ANALYZE")))
        return timings
    plan, _ = Plan.objects.get_or_create(
        code="bench",
        defaults={"name": "Bench", "requests_per_minute": 10_000_000, "max_concurrent_calls": 10_000},
    )
    for i in range(TENANTS):
        company = Company.objects.create(slug=f"tenant-{i}", name=f"Tenant {i}", plan=plan)
        for b in range(3):
            branch = Branch.objects.create(company=company, slug=f"b{b}", name=f"Branch {b}")
            PhoneNumber.objects.create(company=company, branch=branch, number=f"+4930{i:02d}{b}00")
            for s in range(2):
                staff = Staff.objects.create(company=company, branch=branch, name=f"Staff {b}.{s}")
                if (b, s) != (2, 1):  # one staff member per tenant without working hours
                    WorkingHours.objects.bulk_create(
                        WorkingHours(company=company, staff=staff, weekday=d, starts="09:00", ends="17:00")
                        for d in range(1, 6)
                    )
        # a number that rings no branch and one switched off: the mapping's other rows
        PhoneNumber.objects.create(company=company, number=f"+4930{i:02d}900", type="office")
        PhoneNumber.objects.create(company=company, number=f"+4930{i:02d}901", is_active=False)
        Service.objects.bulk_create(
            Service(company=company, name=f"Service {k}", duration_minutes=30 + 15 * k, price=40 + 20 * k)
            for k in range(4)
        )
    timings = []
    tenants_cte = """
        WITH t AS (
            SELECT row_number() OVER (ORDER BY co.id) - 1 AS n, co.id AS company_id,
                   (SELECT array_agg(id ORDER BY id) FROM askpro_branch WHERE company_id = co.id) AS branches,
                   (SELECT array_agg(id ORDER BY id) FROM askpro_staff WHERE company_id = co.id) AS staff,
                   (SELECT array_agg(id ORDER BY id) FROM askpro_service WHERE company_id = co.id) AS services,
                   (SELECT min(id) FROM askpro_customer WHERE company_id = co.id) AS first_customer
            FROM askpro_company co WHERE co.slug LIKE 'tenant-%%'
        )"""
    with connection.cursor() as cur:
        timings.append(
            (
                f"{TENANTS * 5000:,} customers",
                _timed(
                    cur,
                    """INSERT INTO askpro_customer (company_id, name, email, phone, notes, language,
                        preferred_channel, created_at)
                    SELECT co.id, 'Customer ' || g, '', '+4917' || co.id || '-' || g, '', '', '', now()
                    FROM askpro_company co CROSS JOIN generate_series(1, 5000) g
                    WHERE co.slug LIKE 'tenant-%%' ORDER BY co.id, g""",
                ),
            )
        )
        timings.append(
            (
                f"{calls:,} calls over 400 days",
                _timed(
                    cur,
                    tenants_cte
                    + """
                    INSERT INTO askpro_call (company_id, branch_id, customer_id, retell_call_id, agent_id,
                        from_number, to_number, direction, status, disconnection_reason, call_successful,
                        started_at, ended_at, duration_sec, cost, transcript, summary, sentiment, analysis,
                        created_at)
                    SELECT t.company_id, t.branches[1 + k %% 3],
                           CASE WHEN k %% 5 = 0 THEN NULL ELSE t.first_customer + k %% 5000 END,
                           NULL, '', '+49170' || g, '+4930', 'inbound',
                           CASE WHEN k %% 17 = 0 THEN 'error' ELSE 'ended' END,
                           CASE WHEN k %% 17 = 0 THEN 'error_unknown' WHEN k %% 13 = 0 THEN 'call_transfer'
                                WHEN k %% 11 = 0 THEN 'dial_no_answer' WHEN k %% 2 = 0 THEN 'user_hangup'
                                ELSE 'agent_hangup' END,
                           k %% 3 <> 0, x.ts, x.ts + (20 + g %% 400) * interval '1 second', 20 + g %% 400, 0.1,
                           '', '', '', '{}'::jsonb, x.ts
                    FROM generate_series(0, %s - 1) g
                    JOIN t ON t.n = g %% 20
                    -- k: the call's number within its tenant (g is the tenant's number modulo 20, so
                    -- every per-call choice is made from k, or one tenant would get one kind only)
                    CROSS JOIN LATERAL (SELECT g / 20 AS k) kk
                    CROSS JOIN LATERAL (
                        SELECT date_trunc('day', now()) - (k %% 400) * interval '1 day'
                               + (7 + (g * 7) %% 12) * interval '1 hour' + (g %% 60) * interval '1 minute' AS ts
                    ) x""",
                    [calls],
                ),
            )
        )
        timings.append(
            (
                "appointments for every second call",
                _timed(
                    cur,
                    tenants_cte
                    + """
                    INSERT INTO askpro_appointment (company_id, branch_id, customer_id, staff_id, service_id,
                        call_id, starts_at, ends_at, status, calcom_booking_id, calcom_booking_uid, error_message,
                        notes, metadata, created_at, updated_at)
                    SELECT c.company_id, c.branch_id, c.customer_id, t.staff[1 + h %% 6],
                           t.services[1 + (h / 6) %% 4], c.id, x.starts,
                           x.starts + (30 + 15 * ((h / 6) %% 4)) * interval '1 minute',
                           CASE WHEN h %% 10 = 0 THEN 'cancelled' WHEN h %% 10 = 3 OR h %% 7 = 0 THEN 'no_show'
                                WHEN h %% 50 = 4 THEN 'failed' WHEN x.starts < now() THEN 'completed'
                                ELSE 'scheduled' END,
                           NULL, NULL, '', '', '{}'::jsonb, c.started_at + interval '2 minutes', now()
                    FROM askpro_call c JOIN t ON t.company_id = c.company_id
                    -- the call's g is in its from_number; h: the appointment's number within its tenant
                    CROSS JOIN LATERAL (SELECT substr(c.from_number, 7)::bigint / 20 AS k) kk
                    CROSS JOIN LATERAL (SELECT k / 2 AS h) hh
                    CROSS JOIN LATERAL (
                        SELECT date_trunc('hour', c.started_at) + (1 + h %% 20) * interval '1 day' AS starts
                    ) x
                    WHERE k %% 2 = 0 AND c.company_id IN (SELECT company_id FROM t)""",
                ),
            )
        )
        timings.append(
            (
                "paid invoices for completed appointments",
                _timed(
                    cur,
                    """INSERT INTO askpro_invoice (company_id, customer_id, appointment_id, stripe_invoice_id,
                        number, status, currency, subtotal, tax, total, due_date, paid_at, metadata, created_at)
                    SELECT a.company_id, a.customer_id, a.id, CASE WHEN a.id %% 2 = 0 THEN 'in_b' || a.id END,
                           '', 'paid', 'EUR', s.price, 0, s.price, NULL, a.ends_at + interval '1 hour',
                           '{}'::jsonb, a.ends_at
                    FROM askpro_appointment a JOIN askpro_service s ON s.id = a.service_id
                    WHERE a.status = 'completed'""",
                ),
            )
        )
        timings += generate_messages()
        # VACUUM as autovacuum would have by now: it sets the visibility map, without which
        # every count reads the heap (fresh rows), and ANALYZE gives the planner the new sizes.
        timings.append(("VACUUM ANALYZE", _timed(cur, "VACUUM ANALYZE")))
        cur.execute("SELECT (SELECT count(*) FROM askpro_call), (SELECT count(*) FROM askpro_appointment), "
                    "(SELECT count(*) FROM askpro_invoice)")  # fmt: skip
        n_calls, n_appts, n_invoices = cur.fetchone()
        timings.append((f"(rows: {n_calls:,} calls, {n_appts:,} appointments, {n_invoices:,} invoices)", 0.0))
    return timings


def generate_messages() -> list[tuple[str, float]]:
    """Outbound SMS and WhatsApp reminders, 24 hours before two in three appointments that have a
    customer and start by tomorrow, with Twilio's final statuses (once; kept databases too)."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT EXISTS (SELECT 1 FROM mcp_messaging_message)")
        if cur.fetchone()[0]:
            return []
        seconds = _timed(
            cur,
            """INSERT INTO mcp_messaging_message (company_id, channel, direction, customer_number, sender, body,
                content_sid, content_variables, twilio_sid, status, status_rank, error_code, error_message, price,
                price_unit, segments, urgent, send_after, idempotency_key, keyword, created_at, sent_at,
                updated_at)
            SELECT a.company_id, CASE WHEN a.id %% 2 = 0 THEN 'whatsapp' ELSE 'sms' END, 'outbound', cu.phone,
                   '+4930000', 'Reminder', '', '{}'::jsonb, 'SMb' || a.id, x.status,
                   CASE x.status WHEN 'read' THEN 6 ELSE 5 END,
                   CASE WHEN x.status IN ('failed', 'undelivered') THEN 30003 END, '', 0.0075, 'USD', 1, false,
                   NULL, '', '', x.at, x.at, x.at
            FROM askpro_appointment a JOIN askpro_customer cu ON cu.id = a.customer_id
            CROSS JOIN LATERAL (
                SELECT greatest(a.starts_at - interval '24 hours', a.created_at + interval '1 minute') AS at,
                       CASE WHEN a.id %% 23 = 0 THEN 'failed' WHEN a.id %% 19 = 0 THEN 'undelivered'
                            WHEN a.id %% 2 = 0 AND a.id %% 5 = 0 THEN 'read' ELSE 'delivered' END AS status
            ) x
            WHERE a.id %% 3 <> 0 AND a.starts_at < now() + interval '1 day'""",
        )
        cur.execute("SELECT count(*) FROM mcp_messaging_message")
        return [(f"{cur.fetchone()[0]:,} reminder messages", seconds)]


# --- the floors: one hand-written statement per operation, for the same answer ---

FLOOR_OVERVIEW = f"""
WITH c AS (
    SELECT c.started_at >= %(since)s AS cur, count(*) AS calls,
           count(*) FILTER (WHERE {HANDLING} = 'answered') AS answered,
           count(*) FILTER (WHERE {HANDLING} = 'missed') AS missed,
           count(*) FILTER (WHERE b.call_id IS NOT NULL) AS booked,
           count(*) FILTER (WHERE c.customer_id IS NULL) AS unknown
    FROM askpro_call c
    LEFT JOIN (SELECT DISTINCT call_id FROM askpro_appointment WHERE company_id = %(company)s
               AND status <> 'failed' AND created_at >= %(prev_since)s) b ON b.call_id = c.id
    WHERE c.company_id = %(company)s AND c.started_at >= %(prev_since)s AND c.started_at < %(until)s GROUP BY 1),
a AS (
    SELECT starts_at >= %(since)s AS cur, count(*) AS appointments, count(*) FILTER (WHERE status IN {VISITS}) AS visits,
           count(*) FILTER (WHERE status = 'cancelled') AS cancelled, count(*) FILTER (WHERE status = 'no_show') AS no_show
    FROM askpro_appointment WHERE company_id = %(company)s AND starts_at >= %(prev_since)s AND starts_at < %(until)s
    GROUP BY 1),
bk AS (SELECT created_at >= %(since)s AS cur, count(*) AS bookings FROM askpro_appointment
       WHERE company_id = %(company)s AND created_at >= %(prev_since)s AND created_at < %(until)s GROUP BY 1),
r AS (SELECT paid_at >= %(since)s AS cur, sum(total) AS revenue FROM askpro_invoice
      WHERE company_id = %(company)s AND status = 'paid' AND currency = 'EUR'
        AND paid_at >= %(prev_since)s AND paid_at < %(until)s GROUP BY 1),
n AS (SELECT f >= %(since)s AS cur, count(*) AS new_customers FROM (
        SELECT min(starts_at) AS f FROM askpro_appointment WHERE company_id = %(company)s AND customer_id IS NOT NULL
          AND status IN {VISITS} AND starts_at < %(until)s GROUP BY customer_id HAVING min(starts_at) >= %(prev_since)s
      ) x GROUP BY 1)
SELECT * FROM c FULL JOIN a USING (cur) FULL JOIN bk USING (cur) FULL JOIN r USING (cur) FULL JOIN n USING (cur)
"""

FLOOR_FUNNEL = f"""
SELECT c.started_at >= %(since)s AS cur,
       extract(isodow FROM c.started_at AT TIME ZONE %(tz)s) AS dow, extract(hour FROM c.started_at AT TIME ZONE %(tz)s) AS hr,
       c.disconnection_reason, {HANDLING} AS handling,
       count(*), count(*) FILTER (WHERE b.call_id IS NOT NULL), count(*) FILTER (WHERE b.attended),
       count(*) FILTER (WHERE c.customer_id IS NULL), count(*) FILTER (WHERE c.call_successful),
       avg(c.duration_sec), percentile_cont(0.5) WITHIN GROUP (ORDER BY c.duration_sec),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY c.duration_sec), sum(c.duration_sec)
FROM askpro_call c
LEFT JOIN (SELECT call_id, bool_or(status = 'completed') AS attended FROM askpro_appointment
           WHERE company_id = %(company)s AND status <> 'failed' AND created_at >= %(prev_since)s GROUP BY call_id) b
  ON b.call_id = c.id
WHERE c.company_id = %(company)s AND c.started_at >= %(prev_since)s AND c.started_at < %(until)s
GROUP BY GROUPING SETS ((1), (1, 5), (1, 2, 3), (1, 4, 5))
"""

FLOOR_APPOINTMENTS = f"""
SELECT a.starts_at >= %(since)s AS cur, extract(isodow FROM a.starts_at AT TIME ZONE %(tz)s) AS dow,
       extract(hour FROM a.starts_at AT TIME ZONE %(tz)s) AS hr, (a.starts_at AT TIME ZONE %(tz)s)::date AS day,
       a.status, count(*), avg(extract(epoch FROM a.starts_at - a.created_at)) FILTER (WHERE a.status <> 'failed'),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM a.starts_at - a.created_at)),
       sum(extract(epoch FROM a.ends_at - a.starts_at)) FILTER (WHERE a.status IN {VISITS}),
       (SELECT count(*) FROM askpro_appointment b WHERE b.company_id = %(company)s
          AND b.created_at >= %(prev_since)s AND b.created_at < %(since)s),
       (SELECT count(*) FROM askpro_appointment b WHERE b.company_id = %(company)s
          AND b.created_at >= %(since)s AND b.created_at < %(until)s)
FROM askpro_appointment a
WHERE a.company_id = %(company)s AND a.starts_at >= %(prev_since)s AND a.starts_at < %(until)s
GROUP BY GROUPING SETS ((1), (1, 5), (1, 2, 3), (1, 4, 5))
"""

FLOOR_UTILISATION = f"""
WITH days AS (SELECT d::date >= %(date_from)s AS cur, extract(isodow FROM d) AS dow
              FROM generate_series(%(prev_from)s::date, %(date_to)s::date, interval '1 day') d),
av AS (SELECT w.staff_id, days.cur, sum(extract(epoch FROM w.ends - w.starts)) / 60 AS minutes
       FROM askpro_workinghours w JOIN days ON days.dow = w.weekday WHERE w.company_id = %(company)s GROUP BY 1, 2),
bk AS (SELECT staff_id, starts_at >= %(since)s AS cur, count(*) AS n,
              sum(extract(epoch FROM least(ends_at, %(until)s) - starts_at)) / 60 AS minutes
       FROM askpro_appointment WHERE company_id = %(company)s AND starts_at >= %(prev_since)s AND starts_at < %(until)s
         AND status IN {VISITS} AND staff_id IS NOT NULL GROUP BY 1, 2)
SELECT s.branch_id, s.id, p.cur, sum(bk.n), sum(bk.minutes), sum(av.minutes),
       sum(bk.minutes) / nullif(sum(av.minutes), 0)
FROM askpro_staff s CROSS JOIN (VALUES (true), (false)) p(cur)
LEFT JOIN bk ON bk.staff_id = s.id AND bk.cur = p.cur LEFT JOIN av ON av.staff_id = s.id AND av.cur = p.cur
WHERE s.company_id = %(company)s
GROUP BY GROUPING SETS ((1, 2, 3), (1, 3))
"""

FLOOR_COHORTS = f"""
WITH v AS MATERIALIZED (SELECT customer_id, starts_at FROM askpro_appointment WHERE company_id = %(company)s
                        AND customer_id IS NOT NULL AND status IN {VISITS}),
m AS (SELECT customer_id, month, min(month) OVER (PARTITION BY customer_id) AS first FROM (
        SELECT DISTINCT customer_id, date_trunc('month', starts_at AT TIME ZONE %(tz)s) AS month FROM v
        WHERE starts_at < %(until)s) x),
g AS (SELECT customer_id, starts_at - lag(starts_at) OVER (PARTITION BY customer_id ORDER BY starts_at) AS gap,
             starts_at FROM v WHERE starts_at < %(as_of)s),
r AS (SELECT customer_id, count(*) AS n, max(starts_at) AS last, avg(gap) AS gap FROM g GROUP BY 1
      HAVING count(*) >= 3),
risk AS (SELECT * FROM r WHERE %(as_of)s - last > greatest(gap * 2, interval '30 days')
         AND NOT EXISTS (SELECT 1 FROM v WHERE v.customer_id = r.customer_id AND v.starts_at >= %(as_of)s)),
f AS (SELECT customer_id, min(starts_at) AS first FROM v WHERE starts_at < %(until)s GROUP BY 1),
act AS (SELECT DISTINCT customer_id, starts_at >= %(since)s AS cur FROM v
        WHERE starts_at >= %(prev_since)s AND starts_at < %(until)s)
SELECT 'cohort', first::date, month::date, count(*), NULL FROM m WHERE first >= date_trunc('month', %(date_from)s::date)
GROUP BY 2, 3
UNION ALL
SELECT 'new', NULL, NULL, count(*) FILTER (WHERE f.first >= CASE WHEN act.cur THEN %(since)s ELSE %(prev_since)s END),
       act.cur::int FROM act JOIN f USING (customer_id) GROUP BY act.cur
UNION ALL
SELECT 'risk', NULL, NULL, (SELECT count(*) FROM risk), NULL
UNION ALL
(SELECT 'risky', NULL, NULL, customer_id, NULL FROM risk ORDER BY %(as_of)s - last - gap DESC LIMIT 20)
"""

FLOOR_REVENUE = f"""
SELECT x.cur, x.branch_id, x.service_id, x.staff_id, sum(x.total), count(x.total), sum(x.visit)
FROM (
    SELECT i.paid_at >= %(since)s AS cur, a.branch_id, a.service_id, a.staff_id, i.total, 0 AS visit
    FROM askpro_invoice i LEFT JOIN askpro_appointment a ON a.id = i.appointment_id AND a.company_id = %(company)s
    WHERE i.company_id = %(company)s AND i.status = 'paid' AND i.currency = 'EUR'
      AND i.paid_at >= %(prev_since)s AND i.paid_at < %(until)s
    UNION ALL
    SELECT a.starts_at >= %(since)s, a.branch_id, a.service_id, a.staff_id, NULL, 1
    FROM askpro_appointment a WHERE a.company_id = %(company)s AND a.status IN {VISITS}
      AND a.starts_at >= %(prev_since)s AND a.starts_at < %(until)s
) x
GROUP BY GROUPING SETS ((1), (1, 2), (1, 3), (1, 4))
"""

FLOOR_COMPARE = """
SELECT c.started_at >= %(since)s AS cur, (c.started_at AT TIME ZONE %(tz)s)::date AS day, count(*)
FROM askpro_call c WHERE c.company_id = %(company)s AND c.started_at >= %(prev_since)s AND c.started_at < %(until)s
GROUP BY 1, 2 ORDER BY 2
"""

FLOOR_EXPORT_DAILY = f"""
SELECT d.day, c.calls, c.answered, c.missed, c.booked, a.n, a.cancelled, a.no_show, r.revenue
FROM generate_series(%(date_from)s::date, %(date_to)s::date, interval '1 day') AS d(day)
LEFT JOIN (SELECT (c.started_at AT TIME ZONE %(tz)s)::date AS day, count(*) AS calls,
                  count(*) FILTER (WHERE {HANDLING} = 'answered') AS answered,
                  count(*) FILTER (WHERE {HANDLING} = 'missed') AS missed,
                  count(*) FILTER (WHERE b.call_id IS NOT NULL) AS booked
           FROM askpro_call c LEFT JOIN (SELECT DISTINCT call_id FROM askpro_appointment WHERE company_id = %(company)s
                AND status <> 'failed' AND created_at >= %(since)s) b ON b.call_id = c.id
           WHERE c.company_id = %(company)s AND c.started_at >= %(since)s AND c.started_at < %(until)s GROUP BY 1) c
  ON c.day = d.day
LEFT JOIN (SELECT (starts_at AT TIME ZONE %(tz)s)::date AS day, count(*) AS n,
                  count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
                  count(*) FILTER (WHERE status = 'no_show') AS no_show
           FROM askpro_appointment WHERE company_id = %(company)s AND starts_at >= %(since)s AND starts_at < %(until)s
           GROUP BY 1) a ON a.day = d.day
LEFT JOIN (SELECT (paid_at AT TIME ZONE %(tz)s)::date AS day, sum(total) AS revenue FROM askpro_invoice
           WHERE company_id = %(company)s AND status = 'paid' AND currency = 'EUR'
             AND paid_at >= %(since)s AND paid_at < %(until)s GROUP BY 1) r ON r.day = d.day
ORDER BY 1
"""

FLOOR_MESSAGING = """
SELECT 'delivery', m.channel, m.created_at >= %(since)s, count(*),
       count(*) FILTER (WHERE m.status IN ('delivered', 'read', 'partially_delivered')),
       count(*) FILTER (WHERE m.status = 'read'), count(*) FILTER (WHERE m.status IN ('failed', 'undelivered')),
       count(*) FILTER (WHERE m.status IN ('deferred', 'accepted', 'scheduled', 'queued', 'sending', 'sent'))
FROM mcp_messaging_message m
WHERE m.company_id = %(company)s AND m.direction = 'outbound' AND m.created_at >= %(prev_since)s
  AND m.created_at < %(until)s
GROUP BY GROUPING SETS ((2, 3), (3))
UNION ALL
SELECT 'reminders', r.reminded::text, a.starts_at >= %(since)s, count(*), count(*) FILTER (WHERE a.status = 'completed'),
       count(*) FILTER (WHERE a.status = 'no_show'), NULL, NULL
FROM askpro_appointment a JOIN askpro_customer cu ON cu.id = a.customer_id
CROSS JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM mcp_messaging_message m WHERE m.company_id = %(company)s
    AND m.customer_number = cu.phone AND m.direction = 'outbound' AND m.created_at >= a.created_at
    AND m.created_at < a.starts_at AND m.created_at >= a.starts_at - interval '72 hours'
    AND m.status IN ('sent', 'delivered', 'read', 'partially_delivered')) AS reminded) r
WHERE a.company_id = %(company)s AND a.starts_at >= %(prev_since)s AND a.starts_at < %(until)s
GROUP BY 2, 3
"""

FLOOR_TENANT_STATS = """
SELECT (SELECT count(*) FROM askpro_branch WHERE company_id = %(company)s),
       (SELECT count(*) FROM askpro_staff WHERE company_id = %(company)s),
       (SELECT count(*) FROM askpro_service WHERE company_id = %(company)s),
       (SELECT count(*) FROM askpro_customer WHERE company_id = %(company)s),
       (SELECT count(*) FROM askpro_appointment WHERE company_id = %(company)s),
       (SELECT count(*) FROM askpro_call WHERE company_id = %(company)s),
       (SELECT count(*) FROM askpro_phonenumber WHERE company_id = %(company)s),
       (SELECT count(*) FROM askpro_call WHERE company_id = %(company)s AND started_at >= now() - interval '30 days'),
       (SELECT count(*) FROM askpro_appointment WHERE company_id = %(company)s AND starts_at >= now()
          AND status IN ('scheduled', 'confirmed'))
"""

FLOOR_SCHEMA = """
SELECT (SELECT count(*) FROM askpro_branch WHERE company_id = %(company)s),
       (SELECT count(*) FROM askpro_staff WHERE company_id = %(company)s),
       (SELECT count(*) FROM askpro_service WHERE company_id = %(company)s),
       (SELECT count(*) FROM askpro_customer WHERE company_id = %(company)s),
       (SELECT count(*) FROM askpro_appointment WHERE company_id = %(company)s),
       (SELECT count(*) FROM askpro_call WHERE company_id = %(company)s),
       (SELECT count(*) FROM askpro_phonenumber WHERE company_id = %(company)s),
       (SELECT count(*) FROM askpro_invoice WHERE company_id = %(company)s)
"""

FLOOR_CALL_STATS = """
SELECT (c.started_at AT TIME ZONE 'UTC')::date, count(*), count(*) FILTER (WHERE c.status = 'ended'),
       count(*) FILTER (WHERE c.status = 'error' OR c.call_successful = false), avg(c.duration_sec), sum(c.cost),
       count(*) FILTER (WHERE c.call_successful), min(c.started_at), max(c.started_at),
       (SELECT count(DISTINCT a.call_id) FROM askpro_appointment a JOIN askpro_call x ON x.id = a.call_id
        WHERE x.company_id = %(company)s AND x.started_at >= now() - interval '7 days')
FROM askpro_call c WHERE c.company_id = %(company)s AND c.started_at >= now() - interval '7 days'
GROUP BY GROUPING SETS ((), (1))
"""

FLOOR_SEARCH = """
(SELECT 'customers', id, name FROM askpro_customer WHERE company_id = %(company)s
   AND (name ILIKE '%%' || %(q)s || '%%' OR phone ILIKE '%%' || %(q)s || '%%' OR email ILIKE '%%' || %(q)s || '%%'
        OR notes ILIKE '%%' || %(q)s || '%%') ORDER BY company_id, name LIMIT 20)
UNION ALL
(SELECT 'appointments', a.id, c.name FROM askpro_appointment a LEFT JOIN askpro_customer c ON c.id = a.customer_id
  WHERE a.company_id = %(company)s AND (c.name ILIKE '%%' || %(q)s || '%%' OR c.phone ILIKE '%%' || %(q)s || '%%'
        OR a.notes ILIKE '%%' || %(q)s || '%%') ORDER BY a.starts_at DESC LIMIT 20)
UNION ALL
(SELECT 'calls', k.id, k.from_number FROM askpro_call k LEFT JOIN askpro_customer c ON c.id = k.customer_id
  WHERE k.company_id = %(company)s AND (k.from_number ILIKE '%%' || %(q)s || '%%' OR k.summary ILIKE '%%' || %(q)s || '%%'
        OR c.name ILIKE '%%' || %(q)s || '%%') ORDER BY k.started_at DESC LIMIT 20)
"""

FLOOR_FAILED = """
SELECT a.id, a.starts_at, a.status, a.error_message, c.name, c.phone, b.name, s.name
FROM askpro_appointment a LEFT JOIN askpro_customer c ON c.id = a.customer_id
LEFT JOIN askpro_branch b ON b.id = a.branch_id LEFT JOIN askpro_service s ON s.id = a.service_id
WHERE a.company_id = %(company)s AND a.updated_at >= now() - interval '24 hours'
  AND (a.status = 'failed' OR a.error_message <> '') ORDER BY a.updated_at DESC LIMIT 100
"""

FLOOR_PHONES = """
SELECT n.number, n.type, n.is_active, b.id, b.name, b.is_active, b.calcom_event_type_id, b.retell_agent_id
FROM askpro_phonenumber n LEFT JOIN askpro_branch b ON b.id = n.branch_id
WHERE n.company_id = %(company)s AND n.is_active ORDER BY n.company_id, n.number
"""


def cases() -> list[tuple[str, str, dict, str]]:
    """(service, operation, params, floor SQL); the floor's params come from the same period."""
    return [
        ("analytics", "get_overview", {}, FLOOR_OVERVIEW),
        ("analytics", "get_call_funnel", {}, FLOOR_FUNNEL),
        ("analytics", "get_appointment_stats", {}, FLOOR_APPOINTMENTS),
        ("analytics", "get_utilisation", {}, FLOOR_UTILISATION),
        ("analytics", "get_customer_cohorts", {}, FLOOR_COHORTS),
        ("analytics", "get_revenue", {}, FLOOR_REVENUE),
        ("analytics", "compare_periods", {"metric": "calls"}, FLOOR_COMPARE),
        ("analytics", "export_csv", {"report": "daily"}, FLOOR_EXPORT_DAILY),
        ("analytics", "get_messaging", {}, FLOOR_MESSAGING),
        ("database", "get_tenant_stats", {}, FLOOR_TENANT_STATS),
        ("database", "get_schema", {}, FLOOR_SCHEMA),
        ("database", "get_call_stats", {"days": 7}, FLOOR_CALL_STATS),
        ("database", "search", {"query": "Customer 42"}, FLOOR_SEARCH),
        ("database", "get_failed_appointments", {}, FLOOR_FAILED),
        ("database", "get_phone_branch_mapping", {}, FLOOR_PHONES),
    ]


def measure(repeat: int, tenants: int, days: int) -> list[tuple]:
    import psycopg
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from askpro.models import Company
    from mcp_core.api_keys import api_key_create, principal_for_key
    from mcp_core.contracts import MCPRequest, OperationContext
    from mcp_core.pipeline import call_operation
    from mcp_core.registry import get_registry
    from mcp_core.schemas import decode_params
    from mcp_servers.analytics.periods import resolve_period

    key, _ = api_key_create(name="bench-analytics", scopes=["*"], tenant=None)
    principal = principal_for_key(key)
    companies = list(Company.objects.filter(slug__startswith="tenant-").order_by("pk")[:tenants])
    registry = get_registry()
    db = settings.DATABASES["default"]
    dsn = f"host={db['HOST']} port={db['PORT']} dbname={db['NAME']} user={db['USER']}"
    raw = psycopg.connect(dsn, autocommit=True)
    rows = []
    for service, name, params, floor_sql in cases():
        op = registry.get_operation(service, name)
        server = registry.get_server(service)
        floor_times, unprepared_times, direct_times, routed_times, statements = [], [], [], [], 0
        for company in companies:
            period = resolve_period(company, None, None, default_days=days)
            floor_params = {
                **period.sql(),
                "company": company.pk,
                "as_of": min(period.until, timezone.now()),
                "q": params.get("query", ""),
            }
            op_params = dict(params)
            if service == "analytics":
                op_params.update(date_from=str(period.date_from), date_to=str(period.date_to))
            request = MCPRequest(service=service, operation=name, params=op_params, principal=principal,
                                 tenant=company.slug)  # fmt: skip
            decoded = decode_params(op.params, op_params)

            def direct(company=company, request=request, decoded=decoded, op=op, server=server):
                ctx = OperationContext(
                    request=request, principal=principal, tenant=company, deadline=time.monotonic() + 60
                )
                return server.call(op, ctx, decoded)

            def routed(company=company, op_params=op_params, service=service, name=name):
                response = call_operation(service, name, op_params, principal=principal, tenant=company.slug)
                assert response.success, response.error

            def floor(floor_params=floor_params, floor_sql=floor_sql):
                # psycopg prepares a statement run five times: no parsing or planning after that
                raw.execute(floor_sql, floor_params).fetchall()

            def unprepared(floor_params=floor_params, floor_sql=floor_sql):
                # the same statement parsed and planned each time, as every statement through
                # Django's client-side binding is
                raw.execute(floor_sql, floor_params, prepare=False).fetchall()

            floor(), unprepared(), direct(), routed()  # warm: plans, caches, connections
            runs = ((floor, floor_times), (unprepared, unprepared_times), (direct, direct_times),
                    (routed, routed_times))  # fmt: skip
            for _ in range(repeat):
                for fn, out in runs:
                    started = time.perf_counter()
                    if fn is direct:
                        with CaptureQueriesContext(connection) as queries:
                            fn()
                        statements = max(statements, len(queries.captured_queries))
                    else:
                        fn()
                    out.append((time.perf_counter() - started) * 1000)
        rows.append(
            (f"{service}.{name}", statistics.median(floor_times), statistics.median(unprepared_times),
             statistics.median(direct_times), statistics.median(routed_times), max(routed_times), statements)
        )  # fmt: skip
    raw.close()
    return rows


def measure_page(repeat: int, days: int) -> tuple[float, float, int]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    user = get_user_model().objects.filter(username="bench-analytics").first()
    if user is None:
        user = get_user_model().objects.create_superuser(
            "bench-analytics", "a@example.com", "bench-password-1"
        )
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    today = timezone.localdate()
    url = f"/admin/analytics/?tenant=tenant-1&date_from={today - dt.timedelta(days=days - 1)}&date_to={today}"
    assert client.get(url).status_code == 200
    times = []
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200 and b"a-chart" in response.content
    return statistics.median(times), max(times), len(queries.captured_queries)


def http_throughput(database_url: str, seconds: int) -> list[tuple[str, dict]]:
    from django.db import connections

    from askpro.models import Company
    from mcp_core.api_keys import api_key_create
    from tests.bench.bench_mcp import tools_call
    from tests.bench.harness import gunicorn, load

    _, raw_key = api_key_create(name="bench-http", scopes=["*"], tenant=Company.objects.get(slug="tenant-0"))
    connections.close_all()
    results = []
    with gunicorn(database_url, workers=2) as base:
        for label, tool in (("echo_echo", {"text": "hi"}), ("database_get_tenant_stats", {})):
            body, headers = tools_call(label, tool, modern=False)
            results.append(
                (f"/mcp tools/call {label}", load(base + "/mcp", method="POST", body=body,
                                                  headers={**headers, "Authorization": f"Bearer {raw_key}"},
                                                  seconds=seconds))
            )  # fmt: skip
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tenants", type=int, default=5, help="tenants each operation is measured on")
    parser.add_argument("--days", type=int, default=30, help="period length of the analytics calls")
    parser.add_argument("--http-seconds", type=int, default=5, help="0: skip the /mcp throughput")
    parser.add_argument("--database", default=None, help="keep this database between runs")
    args = parser.parse_args()
    with bench_database(args.database, keep=bool(args.database)) as database_url:
        os.environ.update(bench_env(database_url))
        import django

        django.setup()
        print(f"\n== Data ({TENANTS} tenants) ==")
        for label, seconds in generate(args.calls):
            print(f"  {label:60} {seconds:7.1f} s")
        rows = measure(args.repeat, args.tenants, args.days)
        print(f"\n== Each operation against its floor ({args.days}-day period and the one before; median of "
              f"{args.repeat} x {args.tenants} tenants) ==")  # fmt: skip
        print(f"{'operation':40} {'floor ms':>9} {'unprep':>7} {'op ms':>8} {'x floor':>8} {'x unprep':>8} "
              f"{'routed ms':>10} {'x floor':>8} {'max ms':>8} {'stmts':>6}  target")  # fmt: skip
        for name, floor_ms, unprepared_ms, direct_ms, routed_ms, max_ms, statements in rows:
            ratio = direct_ms / floor_ms if floor_ms else float("nan")
            unprepared_ratio = direct_ms / unprepared_ms if unprepared_ms else float("nan")
            routed_ratio = routed_ms / floor_ms if floor_ms else float("nan")
            ok = "ok" if ratio <= 2 and direct_ms < 300 else "MISSED"
            print(f"{name:40} {floor_ms:9.2f} {unprepared_ms:7.2f} {direct_ms:8.2f} {ratio:7.2f}x "
                  f"{unprepared_ratio:7.2f}x {routed_ms:10.1f} {routed_ratio:7.2f}x {max_ms:8.1f} {statements:6d}  {ok}")  # fmt: skip
        print("  floor ms: the hand-written statement, prepared by psycopg after five runs; unprep: the same")
        print("  parsed and planned each time (x unprep = op / unprep: what is left besides planning);")
        print("  op ms: the operation itself (its statements and Python); x floor = op / floor (the target);")
        print(
            "  routed ms: the same call through the orchestrator (key, validation, rate limit, breaker, one"
        )
        print(
            "  audit row and rollup committed), its ratio and max; stmts: SQL statements the operation ran."
        )
        page_ms, page_max, page_queries = measure_page(args.repeat * 2, args.days)
        ok = "ok" if page_ms < 500 else "MISSED"
        print(f"\n== Analytics page (/admin/analytics/, tenant-1, {args.days} days): median {page_ms:.1f} ms, "
              f"max {page_max:.1f} ms, {page_queries} queries on the request's connection, the operations' own "
              f"connections not counted  (target < 500 ms: {ok}) ==")  # fmt: skip
        if args.http_seconds:
            print(f"\n== /mcp throughput, gunicorn -w 2, {args.http_seconds}s each ==")
            results = http_throughput(database_url, args.http_seconds)
            for label, result in results:
                print(f"{label:48} {result['rps']:8.0f} req/s  p50 {result['p50_ms']:6.2f} ms  "
                      f"p99 {result['p99_ms']:6.2f} ms  errors {result['errors']:.0f}")  # fmt: skip
            print(f"  get_tenant_stats / echo: {results[1][1]['rps'] / results[0][1]['rps']:.2f}")
        print(json.dumps({"note": "figures move with machine load; compare ratios within one run"}))


if __name__ == "__main__":
    main()
