"""The analytics figures, each computed by one SQL statement in PostgreSQL.

Every function takes a company id, a Period (periods.py) and optional filters and runs exactly
one statement: the period and the one before it are read in one pass (a `cur` flag splits
them), grouping, percentiles, windows and JSON shaping happen in the database, and Python only
names the columns. Rows are always filtered by company first, so every statement runs on the
(company, time) indexes.

Definitions (docs/servers/analytics.md says the same):
- a call is *transferred* when Retell ended it by handing it to a person, *missed* when it
  failed (status error, an error or dial reason), *in progress* while registered or ongoing,
  else *answered* by the agent;
- a call *ended in a booking* when an appointment made from it (Appointment.call) did not fail;
  it was *attended* when such an appointment is completed;
- an *unknown caller* is a call with no customer matched;
- a *visit* is an appointment that is scheduled, confirmed or completed (not cancelled, failed
  or a no-show);
- *booked minutes* are the minutes of visits inside the period; utilisation is booked minutes
  against the WorkingHours of the staff member on the period's days.
"""

from __future__ import annotations

from typing import Any

from django.db import connection

from .periods import Period

TRANSFER_REASONS = ("call_transfer", "transfer_bridged", "call_take_over")
MISSED_REASONS = (
    "dial_busy",
    "dial_failed",
    "dial_no_answer",
    "concurrency_limit_reached",
    "registered_call_timeout",
    "no_valid_payment",
)
VISIT_STATUSES = ("scheduled", "confirmed", "completed")


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


HANDLING = f"""CASE WHEN c.status IN ('registered', 'ongoing') THEN 'in_progress'
     WHEN c.disconnection_reason IN ({_quoted(TRANSFER_REASONS)}) THEN 'transferred'
     WHEN c.status = 'error' OR c.disconnection_reason LIKE 'error%%'
          OR c.disconnection_reason IN ({_quoted(MISSED_REASONS)}) THEN 'missed'
     ELSE 'answered' END"""

# Calls of both periods with how they were handled and whether they ended in a booking.
CALLS_CTE = f"""
calls AS MATERIALIZED (
    SELECT c.id, c.started_at, c.started_at >= %(since)s AS cur, c.duration_sec, c.customer_id,
           c.call_successful, c.disconnection_reason, {HANDLING} AS handling
    FROM askpro_call c
    WHERE c.company_id = %(company)s AND c.started_at >= %(prev_since)s AND c.started_at < %(until)s
      AND (%(branch)s::bigint IS NULL OR c.branch_id = %(branch)s)
),
booked AS (
    SELECT a.call_id, bool_or(a.status = 'completed') AS attended
    FROM askpro_appointment a
    -- An appointment is made during or after the call it came from, so only those created
    -- since the periods began can belong to these calls: that bound lets the company/created_at
    -- index pick them instead of reading every appointment of the company.
    WHERE a.company_id = %(company)s AND a.created_at >= %(prev_since)s AND a.status <> 'failed'
      AND a.call_id IN (SELECT id FROM calls)
    GROUP BY a.call_id
),
cb AS MATERIALIZED (
    SELECT calls.*, booked.call_id IS NOT NULL AS is_booked, coalesce(booked.attended, false) AS attended
    FROM calls LEFT JOIN booked ON booked.call_id = calls.id
)"""

# Appointments starting in either period.
APPOINTMENTS_CTE = f"""
appts AS MATERIALIZED (
    SELECT a.id, a.starts_at, a.ends_at, a.created_at, a.status, a.staff_id, a.branch_id, a.service_id,
           a.customer_id, a.starts_at >= %(since)s AS cur, a.status IN ({_quoted(VISIT_STATUSES)}) AS is_visit
    FROM askpro_appointment a
    WHERE a.company_id = %(company)s AND a.starts_at >= %(prev_since)s AND a.starts_at < %(until)s
      AND (%(branch)s::bigint IS NULL OR a.branch_id = %(branch)s)
)"""


def _one_row(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [column.name for column in cursor.description]
        row = cursor.fetchone()
    return dict(zip(names, row, strict=True))


def _params(company_id: int, period: Period, branch_id: int | None, **extra: Any) -> dict[str, Any]:
    return {"company": company_id, "branch": branch_id, **period.sql(), **extra}


def _by_period(rows: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """[{cur: true, ...}, {cur: false, ...}] -> {"current": {...}, "previous": {...}}."""
    found = {("current" if row.pop("cur") else "previous"): row for row in rows or []}
    return {"current": found.get("current", {}), "previous": found.get("previous", {})}


OVERVIEW_SQL = f"""
WITH {CALLS_CTE}, {APPOINTMENTS_CTE},
bookings AS (
    SELECT a.created_at >= %(since)s AS cur, count(*) AS bookings
    FROM askpro_appointment a
    WHERE a.company_id = %(company)s AND a.created_at >= %(prev_since)s AND a.created_at < %(until)s
      AND (%(branch)s::bigint IS NULL OR a.branch_id = %(branch)s)
    GROUP BY 1
),
revenue AS (
    SELECT i.paid_at >= %(since)s AS cur, sum(i.total) AS revenue
    FROM askpro_invoice i LEFT JOIN askpro_appointment a ON a.id = i.appointment_id AND a.company_id = %(company)s
    WHERE i.company_id = %(company)s AND i.status = 'paid' AND i.currency = %(currency)s
      AND i.paid_at >= %(prev_since)s AND i.paid_at < %(until)s
      AND (%(branch)s::bigint IS NULL OR a.branch_id = %(branch)s)
    GROUP BY 1
),
firsts AS (
    SELECT min(a.starts_at) AS first_visit
    FROM askpro_appointment a
    WHERE a.company_id = %(company)s AND a.customer_id IS NOT NULL AND a.starts_at < %(until)s
      AND a.status IN ({_quoted(VISIT_STATUSES)}) AND (%(branch)s::bigint IS NULL OR a.branch_id = %(branch)s)
    GROUP BY a.customer_id
    HAVING min(a.starts_at) >= %(prev_since)s
),
call_totals AS (
    SELECT cur, count(*) AS calls, count(*) FILTER (WHERE handling = 'answered') AS answered_calls,
           count(*) FILTER (WHERE handling = 'missed') AS missed_calls,
           count(*) FILTER (WHERE is_booked) AS booked_calls,
           count(*) FILTER (WHERE customer_id IS NULL) AS unknown_callers
    FROM cb GROUP BY cur
),
appt_totals AS (
    SELECT cur, count(*) AS appointments, count(*) FILTER (WHERE is_visit) AS visits,
           count(*) FILTER (WHERE status = 'cancelled') AS cancellations,
           count(*) FILTER (WHERE status = 'no_show') AS no_shows
    FROM appts GROUP BY cur
),
new_totals AS (SELECT first_visit >= %(since)s AS cur, count(*) AS new_customers FROM firsts GROUP BY 1)
SELECT json_agg(t) AS periods FROM (
    SELECT p.cur, coalesce(ct.calls, 0) AS calls, coalesce(ct.answered_calls, 0) AS answered_calls,
           coalesce(ct.missed_calls, 0) AS missed_calls, coalesce(ct.booked_calls, 0) AS booked_calls,
           coalesce(ct.unknown_callers, 0) AS unknown_callers, coalesce(at.appointments, 0) AS appointments,
           coalesce(at.visits, 0) AS visits, coalesce(at.cancellations, 0) AS cancellations,
           coalesce(at.no_shows, 0) AS no_shows, coalesce(bk.bookings, 0) AS bookings,
           coalesce(rv.revenue, 0) AS revenue, coalesce(nt.new_customers, 0) AS new_customers
    FROM (VALUES (true), (false)) AS p(cur)
    LEFT JOIN call_totals ct USING (cur) LEFT JOIN appt_totals at USING (cur) LEFT JOIN bookings bk USING (cur)
    LEFT JOIN revenue rv USING (cur) LEFT JOIN new_totals nt USING (cur)
) t
"""


def overview(company_id: int, period: Period, branch_id: int | None, currency: str) -> dict[str, Any]:
    row = _one_row(OVERVIEW_SQL, _params(company_id, period, branch_id, currency=currency))
    return _by_period(row["periods"])


FUNNEL_SQL = f"""
WITH {CALLS_CTE}
SELECT
  (SELECT json_agg(t) FROM (
      SELECT cur, count(*) AS calls,
             count(*) FILTER (WHERE handling = 'answered') AS answered,
             count(*) FILTER (WHERE handling = 'transferred') AS transferred,
             count(*) FILTER (WHERE handling = 'missed') AS missed,
             count(*) FILTER (WHERE handling = 'in_progress') AS in_progress,
             count(*) FILTER (WHERE is_booked) AS booked,
             count(*) FILTER (WHERE attended) AS attended,
             count(*) FILTER (WHERE customer_id IS NULL) AS unknown_callers,
             count(*) FILTER (WHERE call_successful) AS successful,
             round(avg(duration_sec) FILTER (WHERE handling <> 'in_progress'), 1) AS avg_duration_sec,
             percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_sec)
                 FILTER (WHERE handling <> 'in_progress') AS median_duration_sec,
             percentile_cont(0.9) WITHIN GROUP (ORDER BY duration_sec)
                 FILTER (WHERE handling <> 'in_progress') AS p90_duration_sec,
             coalesce(sum(duration_sec), 0) AS total_duration_sec
      FROM cb GROUP BY cur) t) AS totals,
  (SELECT json_agg(t ORDER BY weekday, hour) FROM (
      SELECT extract(isodow FROM started_at AT TIME ZONE %(tz)s)::int AS weekday,
             extract(hour FROM started_at AT TIME ZONE %(tz)s)::int AS hour,
             count(*) AS calls, count(*) FILTER (WHERE handling = 'missed') AS missed,
             count(*) FILTER (WHERE is_booked) AS booked
      FROM cb WHERE cur GROUP BY 1, 2) t) AS heatmap,
  (SELECT json_agg(t ORDER BY calls DESC, reason) FROM (
      SELECT coalesce(nullif(disconnection_reason, ''), 'unknown') AS reason, handling, count(*) AS calls
      FROM cb WHERE cur GROUP BY 1, 2) t) AS outcomes
"""


def call_funnel(company_id: int, period: Period, branch_id: int | None) -> dict[str, Any]:
    row = _one_row(FUNNEL_SQL, _params(company_id, period, branch_id))
    return {
        "totals": _by_period(row["totals"]),
        "heatmap": row["heatmap"] or [],
        "outcomes": row["outcomes"] or [],
    }


APPOINTMENTS_SQL = f"""
WITH {APPOINTMENTS_CTE}
SELECT
  (SELECT json_agg(t) FROM (
      SELECT cur, count(*) AS appointments,
             count(*) FILTER (WHERE is_visit) AS visits,
             count(*) FILTER (WHERE status = 'completed') AS completed,
             count(*) FILTER (WHERE status IN ('scheduled', 'confirmed')) AS upcoming_or_open,
             count(*) FILTER (WHERE status = 'cancelled') AS cancellations,
             count(*) FILTER (WHERE status = 'no_show') AS no_shows,
             count(*) FILTER (WHERE status = 'failed') AS failed,
             round((avg(extract(epoch FROM starts_at - created_at)) FILTER (WHERE status <> 'failed')
                    / 3600)::numeric, 1) AS avg_lead_time_hours,
             round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM starts_at - created_at))
                    FILTER (WHERE status <> 'failed') / 3600)::numeric, 1) AS median_lead_time_hours,
             coalesce(round(sum(extract(epoch FROM ends_at - starts_at)) FILTER (WHERE is_visit) / 60), 0)
                 AS booked_minutes
      FROM appts GROUP BY cur) t) AS totals,
  (SELECT json_agg(t) FROM (
      SELECT a.created_at >= %(since)s AS cur, count(*) AS bookings
      FROM askpro_appointment a
      WHERE a.company_id = %(company)s AND a.created_at >= %(prev_since)s AND a.created_at < %(until)s
        AND (%(branch)s::bigint IS NULL OR a.branch_id = %(branch)s)
      GROUP BY 1) t) AS bookings,
  (SELECT json_agg(t ORDER BY appointments DESC, weekday, hour) FROM (
      SELECT extract(isodow FROM starts_at AT TIME ZONE %(tz)s)::int AS weekday,
             extract(hour FROM starts_at AT TIME ZONE %(tz)s)::int AS hour, count(*) AS appointments
      FROM appts WHERE cur AND is_visit GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT %(slots)s) t) AS busiest,
  (SELECT json_agg(t ORDER BY day) FROM (
      SELECT (starts_at AT TIME ZONE %(tz)s)::date AS day, count(*) AS appointments,
             count(*) FILTER (WHERE status = 'cancelled') AS cancellations,
             count(*) FILTER (WHERE status = 'no_show') AS no_shows
      FROM appts WHERE cur GROUP BY 1) t) AS daily
"""


def appointment_stats(company_id: int, period: Period, branch_id: int | None, slots: int) -> dict[str, Any]:
    row = _one_row(APPOINTMENTS_SQL, _params(company_id, period, branch_id, slots=slots))
    totals = _by_period(row["totals"])
    bookings = _by_period(row["bookings"])
    for key in ("current", "previous"):
        totals[key]["bookings"] = bookings[key].get("bookings", 0)
    return {"totals": totals, "busiest": row["busiest"] or [], "daily": row["daily"] or []}


UTILISATION_SQL = f"""
WITH days AS (
    SELECT d::date AS day, d::date >= %(date_from)s AS cur, extract(isodow FROM d)::int AS weekday
    FROM generate_series(%(prev_from)s::date, %(date_to)s::date, interval '1 day') d
),
staff AS (
    SELECT s.id, s.name, s.branch_id FROM askpro_staff s
    WHERE s.company_id = %(company)s AND (%(branch)s::bigint IS NULL OR s.branch_id = %(branch)s)
),
available AS (
    SELECT w.staff_id, days.cur, sum(extract(epoch FROM w.ends - w.starts)) / 60 AS minutes
    FROM askpro_workinghours w JOIN days ON days.weekday = w.weekday
    WHERE w.company_id = %(company)s AND w.staff_id IN (SELECT id FROM staff)
    GROUP BY 1, 2
),
booked AS (
    SELECT a.staff_id, a.starts_at >= %(since)s AS cur, count(*) AS appointments,
           sum(extract(epoch FROM least(a.ends_at, %(until)s) - a.starts_at)) / 60 AS minutes
    FROM askpro_appointment a
    WHERE a.company_id = %(company)s AND a.starts_at >= %(prev_since)s AND a.starts_at < %(until)s
      AND a.status IN ({_quoted(VISIT_STATUSES)}) AND a.staff_id IN (SELECT id FROM staff)
    GROUP BY 1, 2
),
per_staff AS (
    SELECT staff.id AS staff_id, staff.name, staff.branch_id, p.cur,
           coalesce(b.appointments, 0) AS appointments, coalesce(b.minutes, 0) AS booked_minutes,
           av.minutes AS working_minutes
    FROM staff CROSS JOIN (VALUES (true), (false)) AS p(cur)
    LEFT JOIN booked b ON b.staff_id = staff.id AND b.cur = p.cur
    LEFT JOIN available av ON av.staff_id = staff.id AND av.cur = p.cur
)
SELECT
  (SELECT json_agg(t ORDER BY t.name, t.staff_id, t.cur DESC) FROM (
      SELECT staff_id, name, branch_id, cur, appointments, round(booked_minutes) AS booked_minutes,
             round(working_minutes) AS working_minutes,
             round((booked_minutes / nullif(working_minutes, 0))::numeric, 4) AS utilisation
      FROM per_staff) t) AS staff,
  (SELECT json_agg(t ORDER BY t.name NULLS LAST, t.branch_id, t.cur DESC) FROM (
      SELECT ps.branch_id, br.name, ps.cur, sum(ps.appointments) AS appointments,
             round(sum(ps.booked_minutes)) AS booked_minutes,
             round(sum(ps.working_minutes)) AS working_minutes,
             round((sum(ps.booked_minutes) FILTER (WHERE ps.working_minutes > 0)
                    / nullif(sum(ps.working_minutes), 0))::numeric, 4) AS utilisation
      FROM per_staff ps LEFT JOIN askpro_branch br ON br.id = ps.branch_id
      GROUP BY ps.branch_id, br.name, ps.cur) t) AS branches
"""


def utilisation(company_id: int, period: Period, branch_id: int | None) -> dict[str, Any]:
    return _one_row(UTILISATION_SQL, _params(company_id, period, branch_id))


VISITS_CTE = f"""
visits AS MATERIALIZED (
    SELECT a.customer_id, a.starts_at
    FROM askpro_appointment a
    WHERE a.company_id = %(company)s AND a.customer_id IS NOT NULL AND a.status IN ({_quoted(VISIT_STATUSES)})
      AND (%(branch)s::bigint IS NULL OR a.branch_id = %(branch)s)
)"""

COHORTS_SQL = f"""
WITH {VISITS_CTE},
months AS (
    SELECT DISTINCT v.customer_id, date_trunc('month', v.starts_at AT TIME ZONE %(tz)s)::date AS month
    FROM visits v WHERE v.starts_at < %(until)s
),
cohort AS (
    SELECT customer_id, month, min(month) OVER (PARTITION BY customer_id) AS first_month FROM months
),
firsts AS (
    SELECT customer_id, min(starts_at) AS first_visit FROM visits WHERE starts_at < %(until)s GROUP BY 1
),
active AS (
    SELECT DISTINCT v.customer_id, v.starts_at >= %(since)s AS cur FROM visits v
    WHERE v.starts_at >= %(prev_since)s AND v.starts_at < %(until)s
),
gaps AS (
    SELECT customer_id, starts_at,
           starts_at - lag(starts_at) OVER (PARTITION BY customer_id ORDER BY starts_at) AS gap
    FROM visits WHERE starts_at < %(as_of)s
),
regulars AS (
    SELECT customer_id, count(*) AS visits, max(starts_at) AS last_visit,
           extract(epoch FROM avg(gap)) / 86400 AS avg_gap_days
    FROM gaps GROUP BY customer_id HAVING count(*) >= %(min_visits)s
),
at_risk AS (
    SELECT r.*, extract(epoch FROM %(as_of)s - r.last_visit) / 86400 AS days_since
    FROM regulars r
    WHERE %(as_of)s - r.last_visit > greatest(r.avg_gap_days * %(factor)s, %(min_days)s) * interval '1 day'
      AND NOT EXISTS (SELECT 1 FROM visits v WHERE v.customer_id = r.customer_id AND v.starts_at >= %(as_of)s)
)
SELECT
  (SELECT json_agg(t ORDER BY first_month, month_offset) FROM (
      SELECT first_month, ((extract(year FROM month) - extract(year FROM first_month)) * 12
                           + extract(month FROM month) - extract(month FROM first_month))::int AS month_offset,
             count(*) AS customers
      FROM cohort WHERE first_month >= date_trunc('month', %(date_from)s::date)::date
      GROUP BY 1, 2) t) AS cohorts,
  (SELECT json_agg(t) FROM (
      SELECT a.cur, count(*) FILTER (WHERE f.first_visit >= CASE WHEN a.cur THEN %(since)s ELSE %(prev_since)s END)
                 AS new_customers,
             count(*) FILTER (WHERE f.first_visit < CASE WHEN a.cur THEN %(since)s ELSE %(prev_since)s END)
                 AS returning_customers
      FROM active a JOIN firsts f USING (customer_id) GROUP BY a.cur) t) AS totals,
  (SELECT count(*) FROM at_risk) AS at_risk_count,
  (SELECT json_agg(t ORDER BY t.days_overdue DESC, t.customer_id) FROM (
      SELECT r.customer_id, c.name, r.visits, r.last_visit, round(r.avg_gap_days::numeric, 1) AS avg_gap_days,
             round(r.days_since::numeric, 1) AS days_since_last_visit,
             round((r.days_since - r.avg_gap_days)::numeric, 1) AS days_overdue
      FROM at_risk r JOIN askpro_customer c ON c.id = r.customer_id
      ORDER BY r.days_since - r.avg_gap_days DESC, r.customer_id LIMIT %(limit)s) t) AS at_risk
"""


def customer_cohorts(
    company_id: int,
    period: Period,
    branch_id: int | None,
    *,
    as_of,
    min_visits: int,
    factor: float,
    min_days: int,
    limit: int,
) -> dict[str, Any]:
    row = _one_row(
        COHORTS_SQL,
        _params(
            company_id,
            period,
            branch_id,
            as_of=as_of,
            min_visits=min_visits,
            factor=factor,
            min_days=min_days,
            limit=limit,
        ),
    )
    return {
        "cohorts": row["cohorts"] or [],
        "totals": _by_period(row["totals"]),
        "at_risk_count": row["at_risk_count"],
        "at_risk": row["at_risk"] or [],
    }


# Invoices and visits as one stream, grouped once: every dimension's revenue and visits come
# out of the same GROUPING SETS pass (no join between two aggregates), and the names are joined
# to the few grouped rows at the end.
REVENUE_SQL = f"""
WITH stream AS (
    -- The invoice's appointment is looked for among the tenant's own (a.company_id): besides
    -- never crediting another tenant's branch, it lets the planner read the tenant's
    -- appointments by index instead of hashing the whole table.
    SELECT i.paid_at >= %(since)s AS cur, a.branch_id, a.service_id, a.staff_id, i.total,
           i.stripe_invoice_id IS NOT NULL AS from_stripe, 1 AS invoice, 0 AS visit
    FROM askpro_invoice i LEFT JOIN askpro_appointment a ON a.id = i.appointment_id AND a.company_id = %(company)s
    WHERE i.company_id = %(company)s AND i.status = 'paid' AND i.currency = %(currency)s
      AND i.paid_at >= %(prev_since)s AND i.paid_at < %(until)s
      AND (%(branch)s::bigint IS NULL OR a.branch_id = %(branch)s)
    UNION ALL
    SELECT a.starts_at >= %(since)s, a.branch_id, a.service_id, a.staff_id, NULL, NULL, 0, 1
    FROM askpro_appointment a
    WHERE a.company_id = %(company)s AND a.starts_at >= %(prev_since)s AND a.starts_at < %(until)s
      AND a.status IN ({_quoted(VISIT_STATUSES)}) AND (%(branch)s::bigint IS NULL OR a.branch_id = %(branch)s)
),
grouped AS (
    SELECT cur, CASE WHEN GROUPING(branch_id) = 0 THEN 'branch' WHEN GROUPING(service_id) = 0 THEN 'service'
                     WHEN GROUPING(staff_id) = 0 THEN 'staff' ELSE 'all' END AS dimension,
           coalesce(branch_id, service_id, staff_id) AS key, sum(total) AS paid, sum(invoice) AS invoices,
           coalesce(sum(total) FILTER (WHERE from_stripe), 0) AS stripe,
           coalesce(sum(total) FILTER (WHERE NOT from_stripe), 0) AS local, sum(visit) AS visits
    FROM stream GROUP BY GROUPING SETS ((cur), (cur, branch_id), (cur, service_id), (cur, staff_id))
)
SELECT json_agg(t ORDER BY t.dimension, t.revenue DESC NULLS LAST, t.key NULLS LAST, t.cur DESC) AS rows FROM (
    SELECT g.cur, g.dimension, g.key, coalesce(b.name, sv.name, st.name) AS name, coalesce(g.paid, 0) AS revenue,
           g.invoices, g.stripe, g.local, g.visits, round(g.paid / nullif(g.visits, 0), 2) AS average_per_visit
    FROM grouped g
    LEFT JOIN askpro_branch b ON g.dimension = 'branch' AND b.id = g.key
    LEFT JOIN askpro_service sv ON g.dimension = 'service' AND sv.id = g.key
    LEFT JOIN askpro_staff st ON g.dimension = 'staff' AND st.id = g.key
) t
"""


def revenue(company_id: int, period: Period, branch_id: int | None, currency: str) -> list[dict[str, Any]]:
    return _one_row(REVENUE_SQL, _params(company_id, period, branch_id, currency=currency))["rows"] or []


# compare_periods: one daily value per metric: (table alias a, time column, condition, value).
METRICS: dict[str, tuple[str, str, str, str]] = {
    "calls": ("askpro_call", "started_at", "true", "count(*)"),
    "answered_calls": ("askpro_call", "started_at", f"({HANDLING}) = 'answered'", "count(*)"),
    "missed_calls": ("askpro_call", "started_at", f"({HANDLING}) = 'missed'", "count(*)"),
    "transferred_calls": ("askpro_call", "started_at", f"({HANDLING}) = 'transferred'", "count(*)"),
    "unknown_callers": ("askpro_call", "started_at", "c.customer_id IS NULL", "count(*)"),
    "booked_calls": (
        "askpro_call",
        "started_at",
        "EXISTS (SELECT 1 FROM askpro_appointment a WHERE a.call_id = c.id AND a.status <> 'failed')",
        "count(*)",
    ),
    "appointments": ("askpro_appointment", "starts_at", "true", "count(*)"),
    "visits": ("askpro_appointment", "starts_at", f"c.status IN ({_quoted(VISIT_STATUSES)})", "count(*)"),
    "cancellations": ("askpro_appointment", "starts_at", "c.status = 'cancelled'", "count(*)"),
    "no_shows": ("askpro_appointment", "starts_at", "c.status = 'no_show'", "count(*)"),
    "bookings": ("askpro_appointment", "created_at", "true", "count(*)"),
    "revenue": (
        "askpro_invoice",
        "paid_at",
        "c.status = 'paid' AND c.currency = %(currency)s",
        "sum(c.total)",
    ),
}


def compare(
    company_id: int,
    metric: str,
    first: Period,
    second: Period,
    branch_id: int | None,
    currency: str,
    granularity: str,
) -> dict[str, Any]:
    """Both periods' values per day (or per week from each period's first day), aligned by offset."""
    table, column, condition, value = METRICS[metric]
    # Invoices carry no branch: they are filtered through the appointment they bill.
    branch_filter = (
        "(%(branch)s::bigint IS NULL OR EXISTS (SELECT 1 FROM askpro_appointment b "
        "WHERE b.id = c.appointment_id AND b.branch_id = %(branch)s))"
        if table == "askpro_invoice"
        else "(%(branch)s::bigint IS NULL OR c.branch_id = %(branch)s)"
    )
    step = 7 if granularity == "week" else 1
    sql = f"""
    WITH spans(which, since, until, date_from, date_to) AS (
        VALUES ('a', %(a_since)s::timestamptz, %(a_until)s::timestamptz, %(a_from)s::date, %(a_to)s::date),
               ('b', %(b_since)s::timestamptz, %(b_until)s::timestamptz, %(b_from)s::date, %(b_to)s::date)
    ),
    daily AS (
        SELECT s.which, ((c.{column} AT TIME ZONE %(tz)s)::date - s.date_from) / {step} AS bucket,
               {value} AS value
        FROM {table} c
        JOIN spans s ON c.{column} >= s.since AND c.{column} < s.until
        WHERE c.company_id = %(company)s AND {condition} AND {branch_filter}
        GROUP BY 1, 2
    ),
    buckets AS (
        SELECT g AS bucket FROM generate_series(0, (greatest(%(a_days)s, %(b_days)s) - 1) / {step}) g
    )
    SELECT (SELECT json_agg(t ORDER BY t.bucket) FROM (
        SELECT b.bucket,
               CASE WHEN b.bucket * {step} < %(a_days)s THEN %(a_from)s::date + b.bucket * {step} END AS a_start,
               CASE WHEN b.bucket * {step} < %(b_days)s THEN %(b_from)s::date + b.bucket * {step} END AS b_start,
               CASE WHEN b.bucket * {step} < %(a_days)s THEN coalesce(da.value, 0) END AS a_value,
               CASE WHEN b.bucket * {step} < %(b_days)s THEN coalesce(db.value, 0) END AS b_value
        FROM buckets b
        LEFT JOIN daily da ON da.which = 'a' AND da.bucket = b.bucket
        LEFT JOIN daily db ON db.which = 'b' AND db.bucket = b.bucket
    ) t) AS rows,
    (SELECT json_object_agg(which, total) FROM (SELECT which, sum(value) AS total FROM daily GROUP BY which) s)
        AS totals
    """
    params = {
        "company": company_id,
        "branch": branch_id,
        "currency": currency,
        "tz": first.tz,
        "a_since": first.since,
        "a_until": first.until,
        "a_from": first.date_from,
        "a_to": first.date_to,
        "a_days": first.days,
        "b_since": second.since,
        "b_until": second.until,
        "b_from": second.date_from,
        "b_to": second.date_to,
        "b_days": second.days,
    }
    return _one_row(sql, params)


DAILY_SQL = """
WITH days AS (
    SELECT d::date AS day FROM generate_series(%(date_from)s::date, %(date_to)s::date, interval '1 day') d
),
call_days AS (
    SELECT (started_at AT TIME ZONE %(tz)s)::date AS day, count(*) AS calls,
           count(*) FILTER (WHERE handling = 'answered') AS answered_calls,
           count(*) FILTER (WHERE handling = 'missed') AS missed_calls,
           count(*) FILTER (WHERE is_booked) AS booked_calls
    FROM cb WHERE cur GROUP BY 1
),
appt_days AS (
    SELECT (starts_at AT TIME ZONE %(tz)s)::date AS day, count(*) AS appointments,
           count(*) FILTER (WHERE status = 'cancelled') AS cancellations,
           count(*) FILTER (WHERE status = 'no_show') AS no_shows
    FROM appts WHERE cur GROUP BY 1
),
money_days AS (
    SELECT (i.paid_at AT TIME ZONE %(tz)s)::date AS day, sum(i.total) AS revenue
    FROM askpro_invoice i LEFT JOIN askpro_appointment a ON a.id = i.appointment_id AND a.company_id = %(company)s
    WHERE i.company_id = %(company)s AND i.status = 'paid' AND i.currency = %(currency)s
      AND i.paid_at >= %(since)s AND i.paid_at < %(until)s
      AND (%(branch)s::bigint IS NULL OR a.branch_id = %(branch)s)
    GROUP BY 1
)
SELECT days.day, coalesce(c.calls, 0), coalesce(c.answered_calls, 0), coalesce(c.missed_calls, 0),
       coalesce(c.booked_calls, 0), coalesce(a.appointments, 0), coalesce(a.cancellations, 0),
       coalesce(a.no_shows, 0), coalesce(m.revenue, 0)
FROM days LEFT JOIN call_days c USING (day) LEFT JOIN appt_days a USING (day) LEFT JOIN money_days m USING (day)
ORDER BY days.day
"""
DAILY_COLUMNS = [
    "date",
    "calls",
    "answered_calls",
    "missed_calls",
    "booked_calls",
    "appointments",
    "cancellations",
    "no_shows",
    "revenue",
]

CALL_ROWS_SQL = f"""
WITH {CALLS_CTE}
SELECT cb.id, to_char(cb.started_at AT TIME ZONE %(tz)s, 'YYYY-MM-DD HH24:MI:SS'), cb.duration_sec, cb.handling,
       cb.disconnection_reason, cb.is_booked, cb.customer_id IS NULL
FROM cb WHERE cb.cur ORDER BY cb.started_at, cb.id LIMIT %(limit)s
"""
CALL_ROW_COLUMNS = [
    "call_id",
    "started_at_local",
    "duration_sec",
    "handling",
    "reason",
    "booked",
    "unknown_caller",
]


def rows(sql: str, params: dict[str, Any]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _current_only(company_id: int, period: Period, branch_id: int | None, **extra: Any) -> dict[str, Any]:
    """Params that make the both-periods CTEs read the period alone (exports have no comparison)."""
    return {**_params(company_id, period, branch_id, **extra), "prev_since": period.since}


def daily_rows(company_id: int, period: Period, branch_id: int | None, currency: str) -> list[tuple]:
    sql = f"WITH {CALLS_CTE}, {APPOINTMENTS_CTE}, " + DAILY_SQL.removeprefix("\nWITH ")
    return rows(sql, _current_only(company_id, period, branch_id, currency=currency))


def call_rows(company_id: int, period: Period, branch_id: int | None, limit: int) -> list[tuple]:
    return rows(CALL_ROWS_SQL, _current_only(company_id, period, branch_id, limit=limit))


# get_messaging: outbound messages by Twilio's final word, and appointments by whether a message
# reached the customer before them. The messaging server's table is read by name (no server
# imports another); messaging_table() in reports.py finds it through the app registry.
DELIVERED_STATUSES = ("delivered", "read", "partially_delivered")
FAILED_STATUSES = ("failed", "undelivered")
# Statuses after which the message was not refused: Twilio handed it on (sent) or better.
REACHED_STATUSES = ("sent", *DELIVERED_STATUSES)
PENDING_STATUSES = ("deferred", "accepted", "scheduled", "queued", "sending", "sent")
CHANNELS = ("sms", "whatsapp")

MESSAGING_SQL = f"""
WITH outbound AS MATERIALIZED (
    SELECT m.channel, m.created_at >= %(since)s AS cur, m.status
    FROM {{messages}} m
    WHERE m.company_id = %(company)s AND m.direction = 'outbound'
      AND m.created_at >= %(prev_since)s AND m.created_at < %(until)s
),
delivery AS (
    SELECT coalesce(channel, 'all') AS channel, cur, count(*) AS messages,
           count(*) FILTER (WHERE status IN ({_quoted(DELIVERED_STATUSES)})) AS delivered,
           count(*) FILTER (WHERE status = 'read') AS read,
           count(*) FILTER (WHERE status IN ({_quoted(FAILED_STATUSES)})) AS failed,
           count(*) FILTER (WHERE status IN ({_quoted(PENDING_STATUSES)})) AS pending
    FROM outbound GROUP BY GROUPING SETS ((channel, cur), (cur))
),
appts AS (
    SELECT a.starts_at >= %(since)s AS cur, a.status,
           EXISTS (
               -- on the (company, customer_number, created_at) index of the messages
               SELECT 1 FROM {{messages}} m
               WHERE m.company_id = %(company)s AND m.customer_number = cu.phone AND m.direction = 'outbound'
                 AND m.created_at >= a.created_at AND m.created_at < a.starts_at
                 AND m.created_at >= a.starts_at - %(window)s * interval '1 hour'
                 AND m.status IN ({_quoted(REACHED_STATUSES)})
           ) AS reminded
    FROM askpro_appointment a JOIN askpro_customer cu ON cu.id = a.customer_id
    WHERE a.company_id = %(company)s AND a.starts_at >= %(prev_since)s AND a.starts_at < %(until)s
      AND cu.company_id = %(company)s
),
reminders AS (
    SELECT reminded, cur, count(*) AS appointments,
           count(*) FILTER (WHERE status = 'completed') AS completed,
           count(*) FILTER (WHERE status = 'no_show') AS no_shows
    FROM appts GROUP BY reminded, cur
)
SELECT (SELECT json_agg(d) FROM delivery d) AS delivery, (SELECT json_agg(r) FROM reminders r) AS reminders
"""


def messaging(company_id: int, period: Period, messages_table: str, window_hours: int) -> dict[str, Any]:
    sql = MESSAGING_SQL.replace("{messages}", connection.ops.quote_name(messages_table))
    row = _one_row(sql, _params(company_id, period, None, window=window_hours))
    return {"delivery": row["delivery"] or [], "reminders": row["reminders"] or []}
