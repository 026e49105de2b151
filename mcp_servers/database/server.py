"""The database server: the platform's own records, read safely.

This class declares the operations; the tenant's record reads live in records.py, the
operators' SQL (guard, bounded run, EXPLAIN, slow queries) in statements.py and sql_guard.py.
"""

from __future__ import annotations

import time

from django.db import DatabaseError, connection

from askpro.selectors import UnknownBranch, call_stats
from mcp_core.contracts import ErrorCode, MCPError, OperationContext
from mcp_core.health import HealthResult, HealthStatus
from mcp_core.schemas import NoParams
from mcp_core.server import MCPServer, operation

from . import records, statements
from .schemas import (
    CallDay,
    CallStatsParams,
    CallStatsResult,
    ExplainParams,
    ExplainResult,
    FailedAppointmentsParams,
    FailedAppointmentsResult,
    GetSchemaParams,
    GetSchemaResult,
    OptimizeParams,
    OptimizeResult,
    PhoneMappingParams,
    PhoneMappingResult,
    QueryParams,
    QueryResult,
    SearchParams,
    SearchResult,
    TenantStatsResult,
)


class DatabaseServer(MCPServer):
    """Reads the platform's own database: schema, tenant statistics, search and safe SQL."""

    name = "database"
    description = "The AskPro platform database: calls, appointments, customers, branches, phone numbers."

    @operation(
        description="""List the tables an agent may query with their columns, indexes and how many
        rows belong to the tenant. Secret columns are never listed.""",
        params=GetSchemaParams,
        result=GetSchemaResult,
        scope="read",
        read_only=True,
    )
    def get_schema(self, ctx: OperationContext, params: GetSchemaParams) -> GetSchemaResult:
        return records.describe_tables(ctx.require_tenant(), params)

    @operation(
        description="""Run one read-only SELECT over the allowed tables (platform operators only).
        The statement is parsed and refused if it writes, calls unsafe functions, stacks
        statements or reads secret columns; it runs read-only under a statement timeout, a
        row cap and a byte cap (values past the byte cap are cut; cut_values says which). Use
        get_schema first to see tables and columns.""",
        params=QueryParams,
        result=QueryResult,
        scope="admin",
        tenant_scoped=False,
        platform_only=True,
        read_only=True,
        timeout=15,
    )
    def query(self, ctx: OperationContext, params: QueryParams) -> QueryResult:
        return statements.run_query(ctx, params)

    @operation(
        description="""Find the tenant's customers, appointments and calls whose text matches a query
        (name, phone, e-mail, notes, call summary). Use it to look someone up by name or number.""",
        params=SearchParams,
        result=SearchResult,
        scope="read",
        read_only=True,
    )
    def search(self, ctx: OperationContext, params: SearchParams) -> SearchResult:
        return records.search(ctx.require_tenant(), params)

    @operation(
        description="""Call statistics for the tenant over the last N days: totals, failures, average
        duration, cost, calls that led to an appointment, and a per-day series.""",
        params=CallStatsParams,
        result=CallStatsResult,
        scope="read",
        read_only=True,
    )
    def get_call_stats(self, ctx: OperationContext, params: CallStatsParams) -> CallStatsResult:
        try:
            stats = call_stats(ctx.require_tenant(), days=params.days, branch_id=params.branch_id)
        except UnknownBranch:
            raise MCPError(
                ErrorCode.NOT_FOUND,
                f"branch_id: no branch {params.branch_id} for this tenant",
                details={"field": "branch_id"},
            ) from None
        return CallStatsResult(**{**stats, "daily": [CallDay(**day) for day in stats["daily"]]})

    @operation(
        description="""Appointments of the tenant that failed (status failed, or an error recorded) in
        the last N hours, with customer, branch and service, newest first.""",
        params=FailedAppointmentsParams,
        result=FailedAppointmentsResult,
        scope="read",
        read_only=True,
    )
    def get_failed_appointments(
        self, ctx: OperationContext, params: FailedAppointmentsParams
    ) -> FailedAppointmentsResult:
        return records.failed_appointments(ctx.require_tenant(), params)

    @operation(
        description="Counts of the tenant's branches, staff, services, customers, appointments, calls and phone numbers.",
        params=NoParams,
        result=TenantStatsResult,
        scope="read",
        read_only=True,
    )
    def get_tenant_stats(self, ctx: OperationContext, params: NoParams) -> TenantStatsResult:
        return records.tenant_stats(ctx.require_tenant())

    @operation(
        description="""Which branch each of the tenant's phone numbers rings: number, type, and the
        branch with its Cal.com event type and Retell agent. Filter by number or branch.""",
        params=PhoneMappingParams,
        result=PhoneMappingResult,
        scope="read",
        read_only=True,
    )
    def get_phone_branch_mapping(
        self, ctx: OperationContext, params: PhoneMappingParams
    ) -> PhoneMappingResult:
        return records.phone_mapping(ctx.require_tenant(), params)

    @operation(
        description="""EXPLAIN one read-only SELECT (platform operators): the plan, its cost and row
        estimates, and which tables are read by sequential scan. With analyze=true the query runs
        (read-only, under the statement timeout) and actual timings are included.""",
        params=ExplainParams,
        result=ExplainResult,
        scope="admin",
        tenant_scoped=False,
        platform_only=True,
        read_only=True,
        timeout=15,
    )
    def explain(self, ctx: OperationContext, params: ExplainParams) -> ExplainResult:
        return statements.explain_query(ctx, params)

    @operation(
        description="""Find slow query shapes (pg_stat_statements when loaded, else the timings this
        project captures of statements over MCP_SLOW_QUERY_MS) and say what makes them slow:
        sequential scans, and filter columns no index covers, with CREATE INDEX statements and the
        evidence (row counts, scan statistics). Nothing is ever applied.""",
        params=OptimizeParams,
        result=OptimizeResult,
        scope="admin",
        tenant_scoped=False,
        platform_only=True,
        read_only=True,
        timeout=30,
    )
    def optimize_queries(self, ctx: OperationContext, params: OptimizeParams) -> OptimizeResult:
        return statements.slow_query_report(ctx, params)

    def health(self) -> HealthResult:
        started = time.perf_counter()
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
        except DatabaseError as exc:
            return HealthResult(HealthStatus.UNHEALTHY, f"database unreachable: {type(exc).__name__}")
        latency = (time.perf_counter() - started) * 1000
        status = HealthStatus.DEGRADED if latency > 500 else HealthStatus.HEALTHY
        return HealthResult(status, f"{connection.vendor} answered SELECT 1", latency_ms=latency)
