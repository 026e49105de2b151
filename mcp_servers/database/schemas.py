"""Params and results of the database operations (msgspec Structs; JSON Schemas come from
them), and the conversion of database values to JSON (no I/O here)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec

from mcp_core.schemas import BIGINT_MAX, Params, Result

Meta = msgspec.Meta


# --- get_schema ---
class GetSchemaParams(Params):
    tables: Annotated[
        list[str] | None, Meta(description="Only these tables (default: every allowed table)")
    ] = None


class ColumnInfo(Result):
    name: str
    type: str
    nullable: bool


class TableInfo(Result):
    name: str
    columns: list[ColumnInfo]
    indexes: list[str]
    tenant_rows: Annotated[int | None, Meta(description="Rows that belong to this tenant")]


class GetSchemaResult(Result):
    tables: list[TableInfo]
    generated_at: dt.datetime


# --- query ---
class QueryParams(Params):
    sql: Annotated[str, Meta(min_length=1, max_length=20_000, description="Exactly one SELECT statement")]
    max_rows: Annotated[int, Meta(ge=1, le=100_000, description="Row cap (also capped by settings)")] = 1000
    max_bytes: (
        Annotated[
            int,
            Meta(
                ge=1024,
                le=256 * 1024 * 1024,
                description="Byte cap for the rows as JSON (default and upper bound: MCP_DATABASE_MAX_BYTES)",
            ),
        ]
        | None
    ) = None


class QueryResult(Result):
    columns: list[str]
    rows: list[list[Any]]
    row_count: int
    truncated: Annotated[bool, Meta(description="Rows were left out or values cut: see truncated_by")]
    max_rows: Annotated[int, Meta(description="The row cap in force for this answer")]
    max_bytes: Annotated[int, Meta(description="The byte cap in force for this answer (rows as JSON)")]
    truncated_by: Annotated[
        Literal["max_rows", "max_bytes"] | None, Meta(description="Which cap ended the answer")
    ] = None
    cut_values: Annotated[
        list[list[int]],
        Meta(description="[row, column] of each value cut short (the start of its text) or left out (null)"),
    ] = msgspec.field(default_factory=list)
    note: str | None = None


# --- search ---
SearchTable = Literal["customers", "appointments", "calls"]


class SearchParams(Params):
    query: Annotated[str, Meta(min_length=2, max_length=100, description="Text to look for")]
    tables: Annotated[list[SearchTable], Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: ["customers", "appointments", "calls"]
    )
    limit: Annotated[int, Meta(ge=1, le=50, description="Rows per table")] = 20


class SearchHit(Result):
    table: str
    id: int
    label: str
    matched: str


class SearchResult(Result):
    query: str
    hits: list[SearchHit]


# --- get_call_stats ---
class CallStatsParams(Params):
    days: Annotated[int, Meta(ge=1, le=365, description="How many days back")] = 7
    branch_id: Annotated[int, Meta(ge=1, le=BIGINT_MAX, description="Only this branch")] | None = None


class CallDay(Result):
    date: dt.date
    total: int
    ended: int
    failed: int
    avg_duration_sec: float | None
    total_cost: float


class CallStatsResult(Result):
    days: int
    total: int
    ended: int
    failed: int
    successful: int
    with_appointment: int
    avg_duration_sec: float | None
    total_cost: float
    first_call_at: dt.datetime | None
    last_call_at: dt.datetime | None
    daily: list[CallDay]


# --- get_failed_appointments ---
class FailedAppointmentsParams(Params):
    hours: Annotated[int, Meta(ge=1, le=24 * 90, description="Look back this many hours")] = 24
    limit: Annotated[int, Meta(ge=1, le=1000)] = 100


class FailedAppointment(Result):
    id: int
    starts_at: dt.datetime
    status: str
    error_message: str
    customer_name: str | None
    customer_phone: str | None
    branch: str | None
    service: str | None


class FailedAppointmentsResult(Result):
    appointments: list[FailedAppointment]
    count: int


# --- get_tenant_stats ---
class TenantStatsResult(Result):
    tenant: str
    branches: int
    staff: int
    services: int
    customers: int
    appointments: int
    calls: int
    phone_numbers: int
    calls_last_30_days: int
    appointments_upcoming: int


# --- get_phone_branch_mapping ---
class PhoneMappingParams(Params):
    phone_number: Annotated[str, Meta(min_length=3, max_length=32, description="E.164 number")] | None = None
    branch_id: Annotated[int, Meta(ge=1, le=BIGINT_MAX, description="Only this branch")] | None = None
    include_inactive: bool = False


class MappedBranch(Result):
    id: int
    name: str
    is_active: bool
    calcom_event_type_id: int | None
    retell_agent_id: str


class PhoneMapping(Result):
    phone_number: str
    type: str
    is_active: bool
    branch: MappedBranch | None


class PhoneMappingResult(Result):
    mappings: list[PhoneMapping]
    total: int


# --- explain ---
class ExplainParams(Params):
    sql: Annotated[str, Meta(min_length=1, max_length=20_000, description="Exactly one SELECT statement")]
    analyze: Annotated[bool, Meta(description="Run it (read-only, under the timeout) for actual timings")] = (
        False
    )


class SeqScan(Result):
    table: str | None
    filter: str | None
    estimated_rows: float | None


class ExplainResult(Result):
    plan: Any
    total_cost: float | None
    estimated_rows: float | None
    actual_ms: float | None
    seq_scans: list[SeqScan]
    index_scans: list[str]


# --- optimize_queries ---
class OptimizeParams(Params):
    limit: Annotated[int, Meta(ge=1, le=50, description="How many slow query shapes to look at")] = 10
    min_mean_ms: Annotated[
        float, Meta(ge=0, le=86_400_000, description="Ignore shapes faster than this on average")
    ] = 0.0


class IndexSuggestionOut(Result):
    table: str
    columns: list[str]
    statement: str
    reason: str
    evidence: dict[str, Any]


class SlowQueryReport(Result):
    query: str
    source: str
    calls: int
    mean_ms: float
    max_ms: float
    total_ms: float
    seq_scans: list[str]
    suggestions: list[IndexSuggestionOut]


class OptimizeResult(Result):
    source: str
    queries: list[SlowQueryReport]
    note: str


def jsonable(value: Any) -> Any:
    """A column value as JSON can carry it (numbers, ISO text, hex, seconds)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return value
