"""Database helpers that make operations honour their deadline on PostgreSQL and SQLite."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction

from .contracts import ErrorCode, MCPError, OperationContext


def remaining_ms(ctx: OperationContext, cap_ms: int | None = None) -> int:
    remaining = int(ctx.remaining() * 1000)
    if remaining <= 0:
        raise MCPError(ErrorCode.TIMEOUT, "The call's deadline passed before the query could start")
    return min(remaining, cap_ms) if cap_ms else remaining


@contextmanager
def deadline_transaction(
    ctx: OperationContext, *, read_only: bool = False, cap_ms: int | None = None
) -> Iterator[None]:
    """A savepoint whose statements are cancelled at the call's deadline.

    PostgreSQL: statement_timeout set locally, and transaction_read_only when asked, which
    the server enforces for every statement and function. A read-only block is always
    rolled back at the end, which also undoes both settings even inside an outer
    transaction. SQLite: a progress handler aborts the statement once the deadline passes.
    """
    budget_ms = remaining_ms(ctx, cap_ms)
    with transaction.atomic():
        savepoint = transaction.savepoint() if read_only else None
        try:
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SELECT set_config('statement_timeout', %s, true)", [str(budget_ms)])
                    if read_only:
                        cursor.execute("SET LOCAL transaction_read_only = on")
                yield
                if not read_only:
                    with connection.cursor() as cursor:
                        cursor.execute("SET LOCAL statement_timeout TO DEFAULT")
            else:
                connection.ensure_connection()
                raw = connection.connection
                stop_at = time.monotonic() + budget_ms / 1000
                raw.set_progress_handler(lambda: 1 if time.monotonic() > stop_at else 0, 10_000)
                try:
                    yield
                finally:
                    raw.set_progress_handler(None, 0)
        finally:
            if savepoint is not None:
                transaction.savepoint_rollback(savepoint)


def keyset_page(rows, limit: int, cursor: str | None) -> tuple[list, str | None]:
    """One page of a queryset, newest first, by primary key: (rows, the next page's cursor or
    None). The cursor is the last row's key, so a page never shifts when rows are added."""
    if cursor:
        rows = rows.filter(pk__lt=int(cursor))
    found = list(rows.order_by("-pk")[: limit + 1])
    more = len(found) > limit
    found = found[:limit]
    return found, (str(found[-1].pk) if more and found else None)
