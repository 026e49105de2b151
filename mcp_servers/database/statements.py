"""The platform operators' SQL operations end to end: the guard's verdict as an error code,
the read-only transaction under the statement timeout, the byte-capped run, EXPLAIN, the
slow-query report, and database errors mapped to error codes."""

from __future__ import annotations

from django.conf import settings
from django.db import DatabaseError, connection

from mcp_core.contracts import ErrorCode, MCPError, OperationContext
from mcp_core.db import deadline_transaction

from .analysis import explain, suggest_indexes
from .bounded import run_bounded
from .querylog import slow_query_rows
from .schemas import (
    ExplainParams,
    ExplainResult,
    IndexSuggestionOut,
    OptimizeParams,
    OptimizeResult,
    QueryParams,
    QueryResult,
    SeqScan,
    SlowQueryReport,
    jsonable,
)
from .sql_guard import (
    CheckedQuery,
    UnsafeQuery,
    allowed_tables,
    check_query,
    secret_columns,
    sqlite_authorizer,
)


def run_query(ctx: OperationContext, params: QueryParams) -> QueryResult:
    """Run one vetted SELECT read-only under the timeout, the row cap and the byte cap."""
    vetted = vetted_query(params.sql)
    max_rows = min(params.max_rows, settings.MCP_DATABASE_MAX_ROWS)
    max_bytes = min(params.max_bytes or settings.MCP_DATABASE_MAX_BYTES, settings.MCP_DATABASE_MAX_BYTES)
    try:
        with deadline_transaction(ctx, read_only=True, cap_ms=settings.MCP_DATABASE_STATEMENT_TIMEOUT_MS):
            if connection.vendor == "sqlite":
                raw = connection.connection
                raw.set_authorizer(sqlite_authorizer(allowed_tables(), secret_columns()))
            try:
                answer = run_bounded(vetted.sql, max_rows=max_rows, max_bytes=max_bytes)
            finally:
                if connection.vendor == "sqlite":
                    raw.set_authorizer(None)
    except DatabaseError as exc:
        raise query_error(exc) from None
    return QueryResult(
        columns=answer.columns,
        rows=[[jsonable(v) for v in row] for row in answer.rows],
        row_count=len(answer.rows),
        truncated=answer.truncated_by is not None,
        truncated_by=answer.truncated_by,
        max_rows=max_rows,
        max_bytes=max_bytes,
        cut_values=answer.cut_values,
        note=answer.note,
    )


def explain_query(ctx: OperationContext, params: ExplainParams) -> ExplainResult:
    """EXPLAIN (ANALYZE when asked, still read-only) one vetted SELECT."""
    vetted = vetted_query(params.sql)
    try:
        with deadline_transaction(ctx, read_only=True, cap_ms=settings.MCP_DATABASE_STATEMENT_TIMEOUT_MS):
            summary = explain(vetted.sql, analyze=params.analyze)
    except DatabaseError as exc:
        raise query_error(exc) from None
    return ExplainResult(
        plan=summary.plan,
        total_cost=summary.total_cost,
        estimated_rows=summary.estimated_rows,
        actual_ms=summary.actual_ms,
        seq_scans=[SeqScan(**scan) for scan in summary.seq_scans],
        index_scans=summary.index_scans,
    )


def slow_query_report(ctx: OperationContext, params: OptimizeParams) -> OptimizeResult:
    """The slowest query shapes with their sequential scans and index suggestions (never applied)."""
    rows, source = slow_query_rows(params.limit * 3)
    reports = []
    for row in rows:
        if row["mean_ms"] < params.min_mean_ms:
            continue
        query = str(row["query"])
        seq_scans: list[str] = []
        plannable = query.replace("(?…)", "(NULL)").replace("?", "NULL")
        try:
            checked = check_query(plannable, dialect=dialect(), any_table=True)
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


def dialect() -> str:
    return "postgres" if connection.vendor == "postgresql" else "sqlite"


def vetted_query(sql: str) -> CheckedQuery:
    """The guard's verdict on one statement; a refusal is a validation_error on field sql."""
    try:
        return check_query(sql, dialect=dialect())
    except UnsafeQuery as exc:
        raise MCPError(
            ErrorCode.VALIDATION_ERROR, str(exc), details={"field": "sql", "problem": exc.problem}
        ) from None


def query_error(exc: DatabaseError) -> MCPError:
    """A database refusal as an error code: timeout, unsafe (refused by the database) or invalid."""
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
