"""Params and results of the analytics operations."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from mcp_core.schemas import BIGINT_MAX, Params, Result

Meta = msgspec.Meta

Day = Annotated[dt.date, Meta(description="A local day in the company's time zone (YYYY-MM-DD)")]
BranchId = Annotated[int, Meta(ge=1, le=BIGINT_MAX, description="Only this branch")]
Number = int | float | None


class PeriodParams(Params):
    date_from: (
        Annotated[dt.date, Meta(description="First local day (default: 29 days before date_to)")] | None
    ) = None
    date_to: (
        Annotated[dt.date, Meta(description="Last local day, inclusive (default: today, or date_from + 29)")]
        | None
    ) = None
    branch_id: BranchId | None = None


class PeriodOut(Result):
    date_from: dt.date
    date_to: dt.date
    days: int
    timezone: str
    previous_from: Annotated[dt.date, Meta(description="The previous period: as many days just before")]
    previous_to: dt.date


class Figure(Result):
    """One figure for the period and the period before it."""

    current: Number
    previous: Number
    change: Annotated[Number, Meta(description="current - previous")]
    change_pct: Annotated[float | None, Meta(description="Change in % of previous (null when previous is 0)")]


# --- get_overview ---
class OverviewResult(Result):
    period: PeriodOut
    currency: str
    calls: Figure
    answered_calls: Figure
    missed_calls: Figure
    booked_calls: Figure  # Calls that ended in a booking (not failed)
    unknown_callers: Figure  # Calls with no customer matched
    booking_rate: Figure
    unknown_caller_rate: Figure
    missed_call_rate: Figure
    appointments: Figure  # Appointments starting in the period
    visits: Figure
    cancellations: Figure
    no_shows: Figure
    bookings: Figure  # Appointments made in the period
    new_customers: Figure
    revenue: Figure


# --- get_call_funnel ---
class FunnelStage(Result):
    stage: Literal["calls", "answered", "booked", "attended"]
    calls: int
    share_of_calls: float | None


class HourRow(Result):
    weekday: Annotated[int, Meta(description="ISO weekday, 1 = Monday")]
    hour: int
    calls: int
    missed: int
    booked: int


class OutcomeRow(Result):
    reason: Annotated[str, Meta(description="Retell's disconnection reason ('unknown' when none)")]
    handling: Literal["answered", "transferred", "missed", "in_progress"]
    calls: int


class CallFunnelResult(Result):
    period: PeriodOut
    calls: Figure
    answered: Figure  # Handled by the agent to the end
    transferred: Figure  # Handed to a person
    missed: Figure
    in_progress: Figure
    booked: Figure
    attended: Figure
    unknown_callers: Figure
    successful: Figure
    booking_rate: Figure
    transfer_rate: Figure
    missed_rate: Figure
    unknown_caller_rate: Figure
    avg_duration_sec: Figure
    median_duration_sec: Figure
    p90_duration_sec: Figure
    total_duration_sec: Figure
    funnel: list[FunnelStage]
    by_hour: Annotated[list[HourRow], Meta(description="Calls per local weekday and hour (only non-empty)")]
    outcomes: list[OutcomeRow]


# --- get_appointment_stats ---
class AppointmentStatsParams(PeriodParams):
    busiest_slots: Annotated[int, Meta(ge=1, le=50, description="How many busiest (weekday, hour) slots")] = (
        10
    )


class SlotRow(Result):
    weekday: int
    hour: int
    appointments: int


class AppointmentDay(Result):
    date: dt.date
    appointments: int
    cancellations: int
    no_shows: int


class AppointmentStatsResult(Result):
    period: PeriodOut
    appointments: Figure
    visits: Figure
    completed: Figure
    upcoming_or_open: Figure
    cancellations: Figure
    no_shows: Figure
    failed: Figure
    bookings: Figure
    cancellation_rate: Figure
    no_show_rate: Figure  # No-shows among completed and no-show appointments
    avg_lead_time_hours: Figure
    median_lead_time_hours: Figure
    booked_minutes: Figure
    busiest_slots: list[SlotRow]
    daily: list[AppointmentDay]


# --- get_utilisation ---
class StaffUtilisation(Result):
    staff_id: int
    name: str
    branch_id: int | None
    appointments: Figure
    booked_minutes: Figure
    working_minutes: Figure  # null: no working hours recorded
    utilisation: Figure  # booked / working minutes (1.0 = fully booked)


class BranchUtilisation(Result):
    branch_id: int | None
    name: str | None
    appointments: Figure
    booked_minutes: Figure
    working_minutes: Figure
    utilisation: Figure


class UtilisationResult(Result):
    period: PeriodOut
    staff: list[StaffUtilisation]
    branches: list[BranchUtilisation]
    staff_without_hours: Annotated[list[int], Meta(description="Staff ids with no WorkingHours recorded")]


# --- get_customer_cohorts ---
class CohortParams(PeriodParams):
    at_risk_min_visits: Annotated[int, Meta(ge=2, le=100, description="Visits that make a regular")] = 3
    at_risk_factor: Annotated[
        float, Meta(ge=1.0, le=20.0, description="Overdue after this many times their usual gap")
    ] = 2.0
    at_risk_min_days: Annotated[int, Meta(ge=1, le=3650, description="And at least this many days")] = 30
    at_risk_limit: Annotated[int, Meta(ge=1, le=200, description="How many customers at risk to list")] = 20


class Cohort(Result):
    month: Annotated[dt.date, Meta(description="First visit month")]
    customers: int
    retained: Annotated[list[int], Meta(description="Customers with a visit N months later (index N)")]
    retention: list[float]


class AtRiskCustomer(Result):
    customer_id: int
    name: str
    visits: int
    last_visit: dt.datetime
    avg_gap_days: float
    days_since_last_visit: float
    days_overdue: float


class CohortsResult(Result):
    period: PeriodOut
    new_customers: Figure
    returning_customers: Figure
    cohorts: list[Cohort]
    as_of: dt.datetime
    at_risk_count: int
    at_risk: list[AtRiskCustomer]


# --- get_revenue ---
class RevenueRow(Result):
    id: Annotated[int | None, Meta(description="null: invoices not linked to an appointment")]
    name: str | None
    revenue: Figure
    invoices: Figure
    visits: Figure
    average_per_visit: Figure


class RevenueResult(Result):
    period: PeriodOut
    currency: str
    revenue: Figure
    invoices: Figure
    stripe: Figure  # Paid invoices that came from Stripe
    local: Figure  # Paid invoices recorded only here
    visits: Figure
    average_per_visit: Figure
    by_branch: list[RevenueRow]
    by_service: list[RevenueRow]
    by_staff: list[RevenueRow]


# --- compare_periods ---
Metric = Literal[
    "calls",
    "answered_calls",
    "missed_calls",
    "transferred_calls",
    "unknown_callers",
    "booked_calls",
    "appointments",
    "visits",
    "cancellations",
    "no_shows",
    "bookings",
    "revenue",
]


class ComparePeriodsParams(PeriodParams, kw_only=True):
    metric: Metric
    compare_from: (
        Annotated[dt.date, Meta(description="First day of the other period (default: previous)")] | None
    ) = None
    compare_to: Annotated[dt.date, Meta(description="Last day of the other period")] | None = None
    granularity: Literal["day", "week"] = "day"


class ComparePoint(Result):
    offset: Annotated[int, Meta(description="Days (or weeks) from each period's first day")]
    period_start: dt.date | None
    period_value: Number
    compare_start: dt.date | None
    compare_value: Number


class SpanOut(Result):
    date_from: dt.date
    date_to: dt.date
    days: int


class ComparePeriodsResult(Result):
    metric: str
    granularity: str
    period: SpanOut
    compare_period: SpanOut
    total: Figure  # current: the period; previous: the compared period
    series: list[ComparePoint]


# --- export_csv ---
class ExportParams(PeriodParams, kw_only=True):
    report: Literal["daily", "calls", "utilisation", "revenue"]
    max_rows: (
        Annotated[
            int, Meta(ge=1, le=100_000, description="Row cap (default and bound: ANALYTICS_CSV_MAX_ROWS)")
        ]
        | None
    ) = None


class ExportResult(Result):
    filename: str
    content_type: str
    csv: str
    rows: int
    truncated: bool
    max_rows: int


# --- get_messaging ---
class MessagingParams(Params):
    date_from: (
        Annotated[dt.date, Meta(description="First local day (default: 29 days before date_to)")] | None
    ) = None
    date_to: (
        Annotated[dt.date, Meta(description="Last local day, inclusive (default: today, or date_from + 29)")]
        | None
    ) = None
    reminder_hours: Annotated[
        int,
        Meta(
            ge=1,
            le=336,
            description="A message counts as a reminder when it reached the customer at most this many "
            "hours before the appointment (and after it was booked)",
        ),
    ] = 72


class ChannelDelivery(Result):
    channel: Literal["sms", "whatsapp", "all"]
    messages: Figure  # Outbound messages created in the period
    delivered: Figure  # delivered, read or partially delivered
    read: Figure  # WhatsApp read receipts
    failed: Figure  # failed or undelivered
    pending: Figure  # No final status yet (deferred, queued, sending, sent)
    delivery_rate: Annotated[Figure, Meta(description="delivered / (delivered + failed)")]


class ReminderGroup(Result):
    appointments: Figure  # Appointments (with a customer) starting in the period
    completed: Figure
    no_shows: Figure
    no_show_rate: Annotated[Figure, Meta(description="no_shows / (completed + no_shows)")]


class MessagingResult(Result):
    period: PeriodOut
    reminder_hours: int
    channels: list[ChannelDelivery]  # sms, whatsapp, then all
    reminded: ReminderGroup
    not_reminded: ReminderGroup
