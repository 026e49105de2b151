"""The database server: the platform's own records, read safely."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Func, IntegerField, Q, Subquery
from django.utils import timezone

from askpro.models import Appointment, Branch, Call, Company, Customer, PhoneNumber, Service, Staff
from askpro.selectors import UnknownBranch, call_stats
from mcp_core.contracts import ErrorCode, MCPError, OperationContext
from mcp_core.db import deadline_transaction
from mcp_core.health import HealthResult, HealthStatus
from mcp_core.schemas import BIGINT_MAX, NoParams, Params, Result
from mcp_core.server import MCPServer, operation

from . import querylog
from .analysis import explain, suggest_indexes
from .bounded import run_bounded
from .sql_guard import UnsafeQuery, allowed_tables, check_query, secret_columns, sqlite_authorizer

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


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return value


def _dialect() -> str:
    return "postgres" if connection.vendor == "postgresql" else "sqlite"


def _slow_query_rows(limit: int) -> tuple[list[dict[str, Any]], str]:
    """Slow query shapes: pg_stat_statements when it is loaded, else our own capture."""
    if connection.vendor == "postgresql":
        try:
            with connection.cursor() as cursor, transaction.atomic():
                cursor.execute(
                    "SELECT query, calls, mean_exec_time, max_exec_time, total_exec_time FROM pg_stat_statements "
                    "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                    "ORDER BY total_exec_time DESC LIMIT %s",
                    [limit],
                )
                rows = cursor.fetchall()
            return (
                [
                    {"query": q, "calls": c, "mean_ms": m, "max_ms": x, "total_ms": t}
                    for q, c, m, x, t in rows
                ],
                "pg_stat_statements",
            )
        except DatabaseError:
            pass  # not installed or not preloaded: fall back to the project's own timings
    return querylog.captured(limit), f"captured timings (statements over {settings.MCP_SLOW_QUERY_MS} ms)"


def _count(queryset) -> Subquery:
    """count(*) of `queryset` as a scalar subquery (one statement counts several tables).

    The querysets name the tenant by its id, not by an outer reference: an uncorrelated
    subquery is planned once with the id known (an InitPlan, parallel where that helps)."""
    # count(*), not count(id): the (company, ...) indexes then answer it by an index-only scan.
    return Subquery(
        queryset.order_by()
        .annotate(n=Func(template="COUNT(*)", output_field=IntegerField()))
        .values("n")[:1],
        output_field=IntegerField(),
    )


def _model_for_table() -> dict[str, Any]:
    return {model._meta.db_table: model for model in apps.get_models()}


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
        tenant = ctx.require_tenant()
        allowed = sorted(allowed_tables())
        wanted = params.tables or allowed
        unknown = [name for name in wanted if name not in allowed]
        if unknown:
            raise MCPError(
                ErrorCode.VALIDATION_ERROR,
                f"tables: {', '.join(unknown)} not allowed; choose from {', '.join(allowed)}",
                details={"field": "tables", "problem": "invalid_value"},
            )
        models_by_table = _model_for_table()
        secrets = secret_columns()
        # Every table's tenant row count in one statement (a scalar subquery per table).
        counted = {
            name: models_by_table[name]
            for name in wanted
            if name in models_by_table
            and name != "askpro_company"
            and "company" in {f.name for f in models_by_table[name]._meta.concrete_fields}
        }
        tenant_counts = (
            Company.objects.filter(pk=tenant.pk)
            .annotate(
                **{
                    f"n_{i}": _count(m.objects.filter(company_id=tenant.pk))
                    for i, m in enumerate(counted.values())
                }
            )
            .values(*(f"n_{i}" for i in range(len(counted))))
            .get()
            if counted
            else {}
        )
        counts_by_table = {name: tenant_counts[f"n_{i}"] or 0 for i, name in enumerate(counted)}
        tables = []
        for name in wanted:
            model = models_by_table.get(name)
            if model is None:
                continue
            columns = [
                ColumnInfo(name=f.column, type=f.get_internal_type(), nullable=f.null)
                for f in model._meta.concrete_fields
                if f.column not in secrets.get(name, frozenset())
            ]
            indexes = [index.name for index in model._meta.indexes]
            indexes += [
                f"{f.column} (unique)" for f in model._meta.concrete_fields if f.unique and not f.primary_key
            ]
            tenant_rows = 1 if name == "askpro_company" else counts_by_table.get(name)
            tables.append(TableInfo(name=name, columns=columns, indexes=indexes, tenant_rows=tenant_rows))
        return GetSchemaResult(tables=tables, generated_at=timezone.now())

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
        checked = self._checked(params.sql)
        max_rows = min(params.max_rows, settings.MCP_DATABASE_MAX_ROWS)
        max_bytes = min(params.max_bytes or settings.MCP_DATABASE_MAX_BYTES, settings.MCP_DATABASE_MAX_BYTES)
        try:
            with deadline_transaction(ctx, read_only=True, cap_ms=settings.MCP_DATABASE_STATEMENT_TIMEOUT_MS):
                if connection.vendor == "sqlite":
                    raw = connection.connection
                    raw.set_authorizer(sqlite_authorizer(allowed_tables(), secret_columns()))
                try:
                    answer = run_bounded(checked.sql, max_rows=max_rows, max_bytes=max_bytes)
                finally:
                    if connection.vendor == "sqlite":
                        raw.set_authorizer(None)
        except DatabaseError as exc:
            raise self._query_error(exc) from None
        return QueryResult(
            columns=answer.columns,
            rows=[[_jsonable(v) for v in row] for row in answer.rows],
            row_count=len(answer.rows),
            truncated=answer.truncated_by is not None,
            truncated_by=answer.truncated_by,
            max_rows=max_rows,
            max_bytes=max_bytes,
            cut_values=answer.cut_values,
            note=answer.note,
        )

    @operation(
        description="""Find the tenant's customers, appointments and calls whose text matches a query
        (name, phone, e-mail, notes, call summary). Use it to look someone up by name or number.""",
        params=SearchParams,
        result=SearchResult,
        scope="read",
        read_only=True,
    )
    def search(self, ctx: OperationContext, params: SearchParams) -> SearchResult:
        tenant = ctx.require_tenant()
        term = params.query.strip()
        hits: list[SearchHit] = []
        # The tenant's matching customers as a subquery (not a join to every customer): the
        # appointment and call searches then walk their own (company, time) index newest first
        # and stop at the limit.
        tenant_customers = Customer.objects.filter(company=tenant)
        named = tenant_customers.filter(Q(name__icontains=term) | Q(phone__icontains=term)).values("pk")
        named_only = tenant_customers.filter(name__icontains=term).values("pk")
        if "customers" in params.tables:
            rows = Customer.objects.filter(company=tenant).filter(
                Q(name__icontains=term)
                | Q(phone__icontains=term)
                | Q(email__icontains=term)
                | Q(notes__icontains=term)
            )[: params.limit]
            hits += [
                SearchHit(table="customers", id=c.pk, label=c.name, matched=c.phone or c.email) for c in rows
            ]
        if "appointments" in params.tables:
            rows = (
                Appointment.objects.filter(company=tenant)
                .filter(Q(customer__in=named) | Q(notes__icontains=term))
                .select_related("customer")[: params.limit]
            )
            hits += [
                SearchHit(
                    table="appointments",
                    id=a.pk,
                    label=f"{a.starts_at:%Y-%m-%d %H:%M} {a.customer.name if a.customer else ''}".strip(),
                    matched=a.status,
                )
                for a in rows
            ]
        if "calls" in params.tables:
            rows = (
                Call.objects.filter(company=tenant)
                .filter(
                    Q(from_number__icontains=term) | Q(summary__icontains=term) | Q(customer__in=named_only)
                )
                .select_related("customer")[: params.limit]
            )
            hits += [
                SearchHit(
                    table="calls",
                    id=c.pk,
                    label=f"{c.from_number} {c.started_at:%Y-%m-%d %H:%M}",
                    matched=c.summary[:120],
                )
                for c in rows
            ]
        return SearchResult(query=term, hits=hits)

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
        tenant = ctx.require_tenant()
        since = timezone.now() - dt.timedelta(hours=params.hours)
        # Plain rows (values), not model instances: a hundred answers cost no object building.
        rows = (
            Appointment.objects.filter(company=tenant, updated_at__gte=since)
            .filter(Q(status=Appointment.Status.FAILED) | ~Q(error_message=""))
            .order_by("-updated_at")
            .values_list(
                "pk", "starts_at", "status", "error_message", "customer__name", "customer__phone", "branch__name",
                "service__name",
            )[: params.limit]
        )  # fmt: skip
        items = [
            FailedAppointment(
                id=pk,
                starts_at=starts_at,
                status=status,
                error_message=error_message,
                customer_name=customer_name,
                customer_phone=customer_phone,
                branch=branch,
                service=service,
            )
            for pk, starts_at, status, error_message, customer_name, customer_phone, branch, service in rows
        ]
        return FailedAppointmentsResult(appointments=items, count=len(items))

    @operation(
        description="Counts of the tenant's branches, staff, services, customers, appointments, calls and phone numbers.",
        params=NoParams,
        result=TenantStatsResult,
        scope="read",
        read_only=True,
    )
    def get_tenant_stats(self, ctx: OperationContext, params: NoParams) -> TenantStatsResult:
        tenant = ctx.require_tenant()
        now = timezone.now()
        # One statement: a scalar count per table, each on its (company, ...) index.
        names = [
            "branches",
            "staff",
            "services",
            "customers",
            "appointments",
            "calls",
            "phone_numbers",
            "calls_last_30_days",
            "appointments_upcoming",
        ]
        counts = (
            Company.objects.filter(pk=tenant.pk)
            .annotate(
                **{
                    f"n_{name}": _count(model.objects.filter(company_id=tenant.pk))
                    for name, model in (
                        ("branches", Branch),
                        ("staff", Staff),
                        ("services", Service),
                        ("customers", Customer),
                        ("appointments", Appointment),
                        ("calls", Call),
                        ("phone_numbers", PhoneNumber),
                    )
                },
                n_calls_last_30_days=_count(
                    Call.objects.filter(company_id=tenant.pk, started_at__gte=now - dt.timedelta(days=30))
                ),
                n_appointments_upcoming=_count(
                    Appointment.objects.filter(
                        company_id=tenant.pk,
                        starts_at__gte=now,
                        status__in=[Appointment.Status.SCHEDULED, Appointment.Status.CONFIRMED],
                    )
                ),
            )
            .values(*(f"n_{name}" for name in names))
            .get()
        )
        # (prefixed: the plain names are the Company's related managers)
        return TenantStatsResult(tenant=tenant.slug, **{name: counts[f"n_{name}"] or 0 for name in names})

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
        tenant = ctx.require_tenant()
        numbers = PhoneNumber.objects.filter(company=tenant).select_related("branch")
        if not params.include_inactive:
            numbers = numbers.filter(is_active=True)
        if params.phone_number:
            numbers = numbers.filter(number=params.phone_number.strip())
        if params.branch_id is not None:
            if not Branch.objects.filter(company=tenant, pk=params.branch_id).exists():
                raise MCPError(
                    ErrorCode.NOT_FOUND,
                    f"branch_id: no branch {params.branch_id} for this tenant",
                    details={"field": "branch_id"},
                )
            numbers = numbers.filter(branch_id=params.branch_id)
        mappings = [
            PhoneMapping(
                phone_number=n.number,
                type=n.type,
                is_active=n.is_active,
                branch=None
                if n.branch is None
                else MappedBranch(
                    id=n.branch.pk,
                    name=n.branch.name,
                    is_active=n.branch.is_active,
                    calcom_event_type_id=n.branch.calcom_event_type_id,
                    retell_agent_id=n.branch.retell_agent_id,
                ),
            )
            for n in numbers
        ]
        return PhoneMappingResult(mappings=mappings, total=len(mappings))

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
        checked = self._checked(params.sql)
        try:
            with deadline_transaction(ctx, read_only=True, cap_ms=settings.MCP_DATABASE_STATEMENT_TIMEOUT_MS):
                summary = explain(checked.sql, analyze=params.analyze)
        except DatabaseError as exc:
            raise self._query_error(exc) from None
        return ExplainResult(
            plan=summary.plan,
            total_cost=summary.total_cost,
            estimated_rows=summary.estimated_rows,
            actual_ms=summary.actual_ms,
            seq_scans=[SeqScan(**scan) for scan in summary.seq_scans],
            index_scans=summary.index_scans,
        )

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
        rows, source = _slow_query_rows(params.limit * 3)
        reports = []
        for row in rows:
            if row["mean_ms"] < params.min_mean_ms:
                continue
            query = str(row["query"])
            seq_scans: list[str] = []
            plannable = query.replace("(?…)", "(NULL)").replace("?", "NULL")
            try:
                checked = check_query(plannable, dialect=_dialect(), any_table=True)
                with deadline_transaction(ctx, read_only=True, cap_ms=2000):
                    summary = explain(checked.sql, analyze=False)
                seq_scans = [str(scan["table"]) for scan in summary.seq_scans]
            except (UnsafeQuery, DatabaseError, MCPError):
                seq_scans = []  # not a plain SELECT, or a shape that cannot be planned without its values
            reports.append(
                SlowQueryReport(
                    query=query[:4000],
                    source=source,
                    calls=int(row["calls"]),
                    mean_ms=round(float(row["mean_ms"]), 2),
                    max_ms=round(float(row["max_ms"]), 2),
                    total_ms=round(float(row["total_ms"]), 2),
                    seq_scans=seq_scans,
                    suggestions=[IndexSuggestionOut(**s.__dict__) for s in suggest_indexes(query)],
                )
            )
            if len(reports) >= params.limit:
                break
        note = "Suggestions are for review; run them in a migration (CONCURRENTLY on PostgreSQL) after checking the evidence."
        return OptimizeResult(source=source, queries=reports, note=note)

    def _checked(self, sql: str):
        try:
            return check_query(sql, dialect=_dialect())
        except UnsafeQuery as exc:
            raise MCPError(
                ErrorCode.VALIDATION_ERROR, str(exc), details={"field": "sql", "problem": exc.problem}
            ) from None

    @staticmethod
    def _query_error(exc: DatabaseError) -> MCPError:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "statement timeout" in message or "canceling statement" in message or "interrupted" in message:
            return MCPError(ErrorCode.TIMEOUT, "sql: the query ran past its time limit and was stopped")
        if "read-only" in message or "not authorized" in message or "prohibited" in message:
            return MCPError(
                ErrorCode.VALIDATION_ERROR,
                f"sql: refused by the database ({message})",
                details={"field": "sql", "problem": "unsafe"},
            )
        return MCPError(
            ErrorCode.VALIDATION_ERROR, f"sql: {message}", details={"field": "sql", "problem": "invalid"}
        )

    def health(self) -> HealthResult:
        import time

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
