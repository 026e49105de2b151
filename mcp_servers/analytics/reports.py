"""The analytics reports: check the request, run the one statement of figures.py, and shape its
answer into the result Structs (pairing each figure with the previous period's)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from decimal import Decimal
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import connection
from django.utils import timezone

from askpro.models import Branch, Company
from mcp_core.contracts import ErrorCode, MCPError

from . import figures
from .periods import Period, resolve_period
from .schemas import (
    AppointmentDay,
    AppointmentStatsParams,
    AppointmentStatsResult,
    AtRiskCustomer,
    BranchUtilisation,
    CallFunnelResult,
    ChannelDelivery,
    Cohort,
    CohortParams,
    CohortsResult,
    ComparePeriodsParams,
    ComparePeriodsResult,
    ComparePoint,
    ExportParams,
    ExportResult,
    Figure,
    FunnelStage,
    HourRow,
    MessagingParams,
    MessagingResult,
    OutcomeRow,
    OverviewResult,
    PeriodOut,
    PeriodParams,
    ReminderGroup,
    RevenueResult,
    RevenueRow,
    SlotRow,
    SpanOut,
    StaffUtilisation,
    UtilisationResult,
)


def require_postgres() -> None:
    # The figures are PostgreSQL statements (percentiles, time zones, generate_series); the
    # embedded SQLite of `make run` says so instead of failing on the first one.
    if connection.vendor != "postgresql":
        raise MCPError(ErrorCode.NOT_CONFIGURED, "analytics: needs PostgreSQL (DATABASE_URL); this is SQLite")


def _number(value: Any) -> int | float | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return float(value)
    return value


def figure(current: Any, previous: Any) -> Figure:
    cur, prev = _number(current), _number(previous)
    change = None if cur is None or prev is None else round(cur - prev, 4)
    pct = round(change / prev * 100, 1) if change is not None and prev else None
    return Figure(current=cur, previous=prev, change=change, change_pct=pct)


def ratio(part: Any, whole: Any) -> float | None:
    part, whole = _number(part), _number(whole)
    return None if not whole or part is None else round(part / whole, 4)


def _pair(totals: dict[str, dict[str, Any]], key: str, default: Any = 0) -> Figure:
    return figure(totals["current"].get(key, default), totals["previous"].get(key, default))


def _rate(totals: dict[str, dict[str, Any]], part: str, whole: str | tuple[str, ...]) -> Figure:
    wholes = (whole,) if isinstance(whole, str) else whole

    def one(row: dict[str, Any]) -> float | None:
        return ratio(row.get(part, 0), sum(row.get(w, 0) or 0 for w in wholes))

    return figure(one(totals["current"]), one(totals["previous"]))


class Report:
    """One request's tenant, period and branch, checked."""

    def __init__(self, company: Company, params: PeriodParams) -> None:
        require_postgres()
        self.company = company
        self.branch_id = params.branch_id
        if (
            self.branch_id is not None
            and not Branch.objects.filter(company=company, pk=self.branch_id).exists()
        ):
            raise MCPError(
                ErrorCode.NOT_FOUND,
                f"branch_id: no branch {self.branch_id} for this tenant",
                details={"field": "branch_id"},
            )
        self.period: Period = resolve_period(company, params.date_from, params.date_to)

    @property
    def currency(self) -> str:
        return self.company.currency.upper()

    def period_out(self) -> PeriodOut:
        p = self.period
        return PeriodOut(
            date_from=p.date_from,
            date_to=p.date_to,
            days=p.days,
            timezone=p.tz,
            previous_from=p.previous_from,
            previous_to=p.previous_to,
        )


def overview(company: Company, params: PeriodParams) -> OverviewResult:
    r = Report(company, params)
    t = figures.overview(company.pk, r.period, r.branch_id, r.currency)
    counts = [
        "calls",
        "answered_calls",
        "missed_calls",
        "booked_calls",
        "unknown_callers",
        "appointments",
        "visits",
        "cancellations",
        "no_shows",
        "bookings",
        "new_customers",
        "revenue",
    ]
    return OverviewResult(
        period=r.period_out(),
        currency=r.currency,
        booking_rate=_rate(t, "booked_calls", "calls"),
        unknown_caller_rate=_rate(t, "unknown_callers", "calls"),
        missed_call_rate=_rate(t, "missed_calls", "calls"),
        **{name: _pair(t, name) for name in counts},
    )


def call_funnel(company: Company, params: PeriodParams) -> CallFunnelResult:
    r = Report(company, params)
    data = figures.call_funnel(company.pk, r.period, r.branch_id)
    t = data["totals"]
    cur = t["current"]
    counts = [
        "calls",
        "answered",
        "transferred",
        "missed",
        "in_progress",
        "booked",
        "attended",
        "unknown_callers",
        "successful",
        "total_duration_sec",
    ]
    durations = ["avg_duration_sec", "median_duration_sec", "p90_duration_sec"]
    return CallFunnelResult(
        period=r.period_out(),
        booking_rate=_rate(t, "booked", "calls"),
        transfer_rate=_rate(t, "transferred", "calls"),
        missed_rate=_rate(t, "missed", "calls"),
        unknown_caller_rate=_rate(t, "unknown_callers", "calls"),
        funnel=[
            FunnelStage(
                stage=stage,
                calls=cur.get(stage, 0),
                share_of_calls=ratio(cur.get(stage, 0), cur.get("calls")),
            )
            for stage in ("calls", "answered", "booked", "attended")
        ],
        by_hour=[HourRow(**row) for row in data["heatmap"]],
        outcomes=[OutcomeRow(**row) for row in data["outcomes"]],
        **{name: _pair(t, name) for name in counts},
        **{name: _pair(t, name, None) for name in durations},
    )


def appointment_stats(company: Company, params: AppointmentStatsParams) -> AppointmentStatsResult:
    r = Report(company, params)
    data = figures.appointment_stats(company.pk, r.period, r.branch_id, params.busiest_slots)
    t = data["totals"]
    counts = [
        "appointments",
        "visits",
        "completed",
        "upcoming_or_open",
        "cancellations",
        "no_shows",
        "failed",
        "bookings",
        "booked_minutes",
    ]
    return AppointmentStatsResult(
        period=r.period_out(),
        cancellation_rate=_rate(t, "cancellations", "appointments"),
        no_show_rate=_rate(t, "no_shows", ("completed", "no_shows")),
        avg_lead_time_hours=_pair(t, "avg_lead_time_hours", None),
        median_lead_time_hours=_pair(t, "median_lead_time_hours", None),
        busiest_slots=[SlotRow(**row) for row in data["busiest"]],
        daily=[AppointmentDay(date=dt.date.fromisoformat(row.pop("day")), **row) for row in data["daily"]],
        **{name: _pair(t, name) for name in counts},
    )


def _paired(rows: list[dict[str, Any]], key: str) -> dict[Any, dict[str, dict[str, Any]]]:
    """SQL rows flagged cur true/false -> {key: {"current": row, "previous": row}}."""
    found: dict[Any, dict[str, dict[str, Any]]] = {}
    for row in rows:
        found.setdefault(row[key], {"current": {}, "previous": {}})[
            "current" if row["cur"] else "previous"
        ] = row
    return found


def _util_figures(pair: dict[str, dict[str, Any]]) -> dict[str, Figure]:
    return {
        name: _pair(pair, name, None)
        for name in ("appointments", "booked_minutes", "working_minutes", "utilisation")
    }


def utilisation(company: Company, params: PeriodParams) -> UtilisationResult:
    r = Report(company, params)
    data = figures.utilisation(company.pk, r.period, r.branch_id)
    staff = []
    without_hours = []
    for staff_id, pair in _paired(data["staff"] or [], "staff_id").items():
        row = pair["current"] or pair["previous"]
        if pair["current"].get("working_minutes") is None and pair["previous"].get("working_minutes") is None:
            without_hours.append(staff_id)
        staff.append(
            StaffUtilisation(
                staff_id=staff_id, name=row["name"], branch_id=row["branch_id"], **_util_figures(pair)
            )
        )
    branches = [
        BranchUtilisation(
            branch_id=branch_id, name=(pair["current"] or pair["previous"])["name"], **_util_figures(pair)
        )
        for branch_id, pair in _paired(data["branches"] or [], "branch_id").items()
    ]
    return UtilisationResult(
        period=r.period_out(), staff=staff, branches=branches, staff_without_hours=sorted(without_hours)
    )


def customer_cohorts(company: Company, params: CohortParams) -> CohortsResult:
    r = Report(company, params)
    as_of = min(r.period.until, timezone.now())
    data = figures.customer_cohorts(
        company.pk,
        r.period,
        r.branch_id,
        as_of=as_of,
        min_visits=params.at_risk_min_visits,
        factor=params.at_risk_factor,
        min_days=params.at_risk_min_days,
        limit=params.at_risk_limit,
    )
    by_month: dict[str, dict[int, int]] = defaultdict(dict)
    for row in data["cohorts"]:
        by_month[row["first_month"]][row["month_offset"]] = row["customers"]
    cohorts = []
    for month, offsets in sorted(by_month.items()):
        size = offsets.get(0, 0)
        retained = [offsets.get(i, 0) for i in range(max(offsets) + 1)]
        cohorts.append(
            Cohort(
                month=dt.date.fromisoformat(month),
                customers=size,
                retained=retained,
                retention=[ratio(n, size) or 0.0 for n in retained],
            )
        )
    t = data["totals"]
    return CohortsResult(
        period=r.period_out(),
        new_customers=_pair(t, "new_customers"),
        returning_customers=_pair(t, "returning_customers"),
        cohorts=cohorts,
        as_of=as_of,
        at_risk_count=data["at_risk_count"],
        at_risk=[
            AtRiskCustomer(**{**row, "last_visit": dt.datetime.fromisoformat(row["last_visit"])})
            for row in data["at_risk"]
        ],
    )


def _revenue_figures(pair: dict[str, dict[str, Any]]) -> dict[str, Figure]:
    return {
        "revenue": _pair(pair, "revenue"),
        "invoices": _pair(pair, "invoices"),
        "visits": _pair(pair, "visits"),
        "average_per_visit": _pair(pair, "average_per_visit", None),
    }


def revenue(company: Company, params: PeriodParams) -> RevenueResult:
    r = Report(company, params)
    rows = figures.revenue(company.pk, r.period, r.branch_id, r.currency)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row["dimension"]].append(row)
    total = _paired(groups["all"], "dimension").get("all", {"current": {}, "previous": {}})

    def breakdown(dimension: str) -> list[RevenueRow]:
        return [
            RevenueRow(id=key, name=(pair["current"] or pair["previous"])["name"], **_revenue_figures(pair))
            for key, pair in _paired(groups[dimension], "key").items()
        ]

    return RevenueResult(
        period=r.period_out(),
        currency=r.currency,
        stripe=_pair(total, "stripe"),
        local=_pair(total, "local"),
        **_revenue_figures(total),
        by_branch=breakdown("branch"),
        by_service=breakdown("service"),
        by_staff=breakdown("staff"),
    )


def compare_periods(company: Company, params: ComparePeriodsParams) -> ComparePeriodsResult:
    r = Report(company, params)
    if params.compare_from is None and params.compare_to is None:
        first_from, second_to = r.period.previous_from, r.period.previous_to
    else:
        first_from, second_to = params.compare_from, params.compare_to
        if first_from is None or second_to is None:
            missing = "compare_from" if first_from is None else "compare_to"
            raise MCPError(
                ErrorCode.VALIDATION_ERROR,
                f"{missing}: give both compare_from and compare_to, or neither (the previous period)",
                details={"field": missing, "problem": "missing"},
            )
    other = resolve_period(company, first_from, second_to, from_field="compare_from", to_field="compare_to")
    data = figures.compare(
        company.pk, params.metric, r.period, other, r.branch_id, r.currency, params.granularity
    )
    totals = data["totals"] or {}
    return ComparePeriodsResult(
        metric=params.metric,
        granularity=params.granularity,
        period=SpanOut(date_from=r.period.date_from, date_to=r.period.date_to, days=r.period.days),
        compare_period=SpanOut(date_from=other.date_from, date_to=other.date_to, days=other.days),
        total=figure(totals.get("a", 0), totals.get("b", 0)),
        series=[
            ComparePoint(
                offset=row["bucket"],
                period_start=row["a_start"] and dt.date.fromisoformat(row["a_start"]),
                period_value=row["a_value"],
                compare_start=row["b_start"] and dt.date.fromisoformat(row["b_start"]),
                compare_value=row["b_value"],
            )
            for row in data["rows"] or []
        ],
    )


def export_csv(company: Company, params: ExportParams) -> ExportResult:
    r = Report(company, params)
    cap = min(params.max_rows or settings.ANALYTICS_CSV_MAX_ROWS, settings.ANALYTICS_CSV_MAX_ROWS)
    if params.report == "daily":
        header = figures.DAILY_COLUMNS
        body = [list(row) for row in figures.daily_rows(company.pk, r.period, r.branch_id, r.currency)]
    elif params.report == "calls":
        header = figures.CALL_ROW_COLUMNS
        body = [list(row) for row in figures.call_rows(company.pk, r.period, r.branch_id, cap + 1)]
    elif params.report == "utilisation":
        header = ["kind", "id", "name", "appointments", "booked_minutes", "working_minutes", "utilisation"]
        result = utilisation(company, params)
        body = [
            ["staff", s.staff_id, s.name, *(getattr(s, f).current for f in header[3:])] for s in result.staff
        ] + [
            ["branch", b.branch_id, b.name, *(getattr(b, f).current for f in header[3:])]
            for b in result.branches
        ]
    else:
        header = ["dimension", "id", "name", "revenue", "invoices", "visits", "average_per_visit"]
        result = revenue(company, params)
        body = [
            [dimension, row.id, row.name, *(getattr(row, f).current for f in header[3:])]
            for dimension, rows in (
                ("branch", result.by_branch),
                ("service", result.by_service),
                ("staff", result.by_staff),
            )
            for row in rows
        ]
    truncated = len(body) > cap
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(_csv_safe(row) for row in body[:cap])
    p = r.period
    return ExportResult(
        filename=f"{company.slug}-{params.report}-{p.date_from}-{p.date_to}.csv",
        content_type="text/csv",
        csv=out.getvalue(),
        rows=min(len(body), cap),
        truncated=truncated,
        max_rows=cap,
    )


def _csv_safe(row: list[Any]) -> list[Any]:
    """Names typed by people could start a spreadsheet formula; prefix those with a quote."""
    return [f"'{v}" if isinstance(v, str) and v[:1] in ("=", "+", "-", "@") else v for v in row]


def messaging_table() -> str:
    """The messaging server's message table, found through the app registry (not an import: no
    server imports another); without the messaging app there is nothing to report."""
    try:
        return apps.get_model("mcp_messaging", "Message")._meta.db_table
    except LookupError:
        raise MCPError(ErrorCode.NOT_CONFIGURED, "analytics: the messaging server is not installed") from None


def messaging(company: Company, params: MessagingParams) -> MessagingResult:
    r = Report(company, PeriodParams(date_from=params.date_from, date_to=params.date_to))
    data = figures.messaging(company.pk, r.period, messaging_table(), params.reminder_hours)
    by_channel: dict[str, dict[str, dict[str, Any]]] = defaultdict(lambda: {"current": {}, "previous": {}})
    for row in data["delivery"]:
        by_channel[row.pop("channel")]["current" if row.pop("cur") else "previous"] = row
    by_reminded: dict[bool, dict[str, dict[str, Any]]] = defaultdict(lambda: {"current": {}, "previous": {}})
    for row in data["reminders"]:
        by_reminded[row.pop("reminded")]["current" if row.pop("cur") else "previous"] = row

    def group(t: dict[str, dict[str, Any]]) -> ReminderGroup:
        return ReminderGroup(
            no_show_rate=_rate(t, "no_shows", ("completed", "no_shows")),
            **{name: _pair(t, name) for name in ("appointments", "completed", "no_shows")},
        )

    return MessagingResult(
        period=r.period_out(),
        reminder_hours=params.reminder_hours,
        channels=[
            ChannelDelivery(
                channel=channel,
                delivery_rate=_rate(by_channel[channel], "delivered", ("delivered", "failed")),
                **{
                    name: _pair(by_channel[channel], name)
                    for name in ("messages", "delivered", "read", "failed", "pending")
                },
            )
            for channel in (*figures.CHANNELS, "all")
        ],
        reminded=group(by_reminded[True]),
        not_reminded=group(by_reminded[False]),
    )
