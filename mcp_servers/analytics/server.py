"""The analytics server: a tenant's calls, appointments, customers and revenue as figures for a
period, each next to the period before it, computed in PostgreSQL (figures.py)."""

from __future__ import annotations

import time

from django.db import DatabaseError, connection

from mcp_core.contracts import OperationContext
from mcp_core.health import HealthResult, HealthStatus
from mcp_core.server import MCPServer, operation

from . import reports
from .schemas import (
    AppointmentStatsParams,
    AppointmentStatsResult,
    CallFunnelResult,
    CohortParams,
    CohortsResult,
    ComparePeriodsParams,
    ComparePeriodsResult,
    ExportParams,
    ExportResult,
    MessagingParams,
    MessagingResult,
    OverviewResult,
    PeriodParams,
    RevenueResult,
    UtilisationResult,
)

PERIOD = """The period is date_from..date_to (local days in the company's time zone; default the
last 30 days), compared with as many days just before it; branch_id narrows it to one branch."""


class AnalyticsServer(MCPServer):
    """Read-only figures over one tenant's records; every operation is one SQL statement."""

    name = "analytics"
    description = "Business analytics of a tenant: calls, appointments, utilisation, customers and revenue"

    def is_configured(self) -> bool:
        return connection.vendor == "postgresql"

    @operation(
        description=f"""Headline figures: calls (answered, missed, ended in a booking, unknown
        callers), appointments (visits, cancellations, no-shows, bookings made), new customers and
        paid revenue, with rates. {PERIOD}""",
        params=PeriodParams,
        result=OverviewResult,
        scope="read",
        read_only=True,
    )
    def get_overview(self, ctx: OperationContext, params: PeriodParams) -> OverviewResult:
        return reports.overview(ctx.require_tenant(), params)

    @operation(
        description=f"""Calls and the call -> booking funnel: answered by the agent, transferred,
        missed, booked, attended; durations (mean, median, p90); outcomes by disconnection
        reason; unknown-caller rate; calls per weekday and hour. {PERIOD}""",
        params=PeriodParams,
        result=CallFunnelResult,
        scope="read",
        read_only=True,
    )
    def get_call_funnel(self, ctx: OperationContext, params: PeriodParams) -> CallFunnelResult:
        return reports.call_funnel(ctx.require_tenant(), params)

    @operation(
        description=f"""Appointments starting in the period: visits, completed, cancellations,
        no-shows, failures, bookings made, lead time (booking to start), booked minutes, the
        busiest weekday/hour slots and a per-day series. {PERIOD}""",
        params=AppointmentStatsParams,
        result=AppointmentStatsResult,
        scope="read",
        read_only=True,
    )
    def get_appointment_stats(
        self, ctx: OperationContext, params: AppointmentStatsParams
    ) -> AppointmentStatsResult:
        return reports.appointment_stats(ctx.require_tenant(), params)

    @operation(
        description=f"""Utilisation per staff member and branch: booked minutes against the
        working hours recorded for them (WorkingHours) on the period's days. Staff without
        working hours have no utilisation (listed in staff_without_hours). The period may lie in
        the future (how booked are the next weeks). {PERIOD}""",
        params=PeriodParams,
        result=UtilisationResult,
        scope="read",
        read_only=True,
    )
    def get_utilisation(self, ctx: OperationContext, params: PeriodParams) -> UtilisationResult:
        return reports.utilisation(ctx.require_tenant(), params)

    @operation(
        description=f"""Customers: new against returning, retention by first-visit month
        (cohorts from the period's first month on), and regulars at risk (at least
        at_risk_min_visits visits, none for at_risk_factor times their usual gap and at least
        at_risk_min_days days, nothing booked). {PERIOD}""",
        params=CohortParams,
        result=CohortsResult,
        scope="read",
        read_only=True,
    )
    def get_customer_cohorts(self, ctx: OperationContext, params: CohortParams) -> CohortsResult:
        return reports.customer_cohorts(ctx.require_tenant(), params)

    @operation(
        description=f"""Paid revenue (local invoices and those from Stripe, in the company's
        currency, by payment date) in total and per branch, service and staff member (through
        the appointment an invoice bills), with the average per visit. {PERIOD}""",
        params=PeriodParams,
        result=RevenueResult,
        scope="read",
        read_only=True,
    )
    def get_revenue(self, ctx: OperationContext, params: PeriodParams) -> RevenueResult:
        return reports.revenue(ctx.require_tenant(), params)

    @operation(
        description=f"""One metric in two periods side by side, per day or week: the period and
        compare_from..compare_to (default: the previous period), with both totals. {PERIOD}""",
        params=ComparePeriodsParams,
        result=ComparePeriodsResult,
        scope="read",
        read_only=True,
    )
    def compare_periods(self, ctx: OperationContext, params: ComparePeriodsParams) -> ComparePeriodsResult:
        return reports.compare_periods(ctx.require_tenant(), params)

    @operation(
        description=f"""A report as CSV text: daily (calls, bookings, appointments, revenue per
        day), calls (one row per call), utilisation or revenue. At most max_rows rows (bounded by
        ANALYTICS_CSV_MAX_ROWS); truncated says when rows were left out. {PERIOD}""",
        params=ExportParams,
        result=ExportResult,
        scope="read",
        read_only=True,
    )
    def export_csv(self, ctx: OperationContext, params: ExportParams) -> ExportResult:
        return reports.export_csv(ctx.require_tenant(), params)

    @operation(
        description="""Messaging: outbound SMS and WhatsApp messages per channel (delivered, read,
        failed, pending, delivery rate), and the no-show rate of appointments whose customer was
        reminded (an outbound message reached their number in the reminder_hours before the start,
        after the booking) against those who were not. The whole tenant (messages carry no
        branch). The period is date_from..date_to, compared with as many days just before it.""",
        params=MessagingParams,
        result=MessagingResult,
        scope="read",
        read_only=True,
    )
    def get_messaging(self, ctx: OperationContext, params: MessagingParams) -> MessagingResult:
        return reports.messaging(ctx.require_tenant(), params)

    def health(self) -> HealthResult:
        if not self.is_configured():
            return HealthResult(HealthStatus.NOT_CONFIGURED, "analytics needs PostgreSQL; this is SQLite")
        started = time.perf_counter()
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
        except DatabaseError as exc:
            return HealthResult(HealthStatus.UNHEALTHY, f"database unreachable: {type(exc).__name__}")
        return HealthResult(
            HealthStatus.HEALTHY, "PostgreSQL answered", latency_ms=(time.perf_counter() - started) * 1000
        )
