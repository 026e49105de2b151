"""Database helpers: operations that honour their deadline on PostgreSQL and SQLite, keyset
pages, and a bulk INSERT cheaper per row than bulk_create."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from django.db import connection, models, transaction
from django.utils import timezone

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


# Values psycopg takes as they are, by field class (exactly: a subclass such as an encrypted
# field prepares its values its own way): nothing for Django to prepare one by one.
def _is_int(v: Any) -> bool:
    return v is None or type(v) is int


def _is_str(v: Any) -> bool:
    return v is None or isinstance(v, str)  # choices' members too: psycopg sends their value


_READY: dict[type[models.Field], Callable[[Any], bool]] = {
    models.ForeignKey: _is_int,
    models.BooleanField: lambda v: v is None or type(v) is bool,
    **dict.fromkeys([models.IntegerField, models.SmallIntegerField, models.BigIntegerField,
                     models.PositiveIntegerField, models.PositiveSmallIntegerField,
                     models.PositiveBigIntegerField], _is_int),
    **dict.fromkeys([models.CharField, models.TextField, models.SlugField, models.EmailField], _is_str),
    models.DateTimeField: lambda v: v is None or (type(v) is dt.datetime and v.tzinfo is not None),
    models.DecimalField: lambda v: v is None or type(v) is Decimal,
}  # fmt: skip


def _columns(objs: list[models.Model], fields: list[models.Field], now: dt.datetime) -> list[list[Any]]:
    """Each field's values across the rows, ready for the database (auto_now fields set to now).
    A column of plain values (str, int, aware datetimes, ...) goes as it is; any other goes
    through the field's own preparation (JSON, encrypted fields, a naive datetime, ...)."""
    columns: list[list[Any]] = []
    for field in fields:
        if isinstance(field, models.DateField) and (field.auto_now or field.auto_now_add):
            for obj in objs:
                setattr(obj, field.attname, now)
        values = [getattr(obj, field.attname) for obj in objs]
        ready = _READY.get(type(field))
        if ready is None or not all(map(ready, values)):
            values = [field.get_db_prep_save(v, connection) for v in values]
        columns.append(values)
    return columns


def _unnest(fields: list[models.Field], extra: str = "") -> str:
    """FROM unnest(%s::type[], ...) AS v(column, ...): the rows as one typed array per field."""
    arrays = ", ".join(f"%s::{f.db_type(connection)}[]" for f in fields)
    names = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    return f"unnest({arrays}) {extra}AS v({names}{', position' if extra else ''})"


def insert_many(objs: list[models.Model], *, unique_fields: list[str] | None = None,
                update_fields: list[str] | None = None) -> None:  # fmt: skip
    """INSERT model instances in one statement and set their primary keys, like bulk_create
    (with unique_fields and update_fields: a row whose key is taken is updated instead, ON
    CONFLICT ... DO UPDATE). On PostgreSQL each column goes as one array through unnest, so
    Django prepares no value one by one: half bulk_create's client cost per row (measured in
    docs/benchmarks.md). auto_now and auto_now_add fields get one time for all the rows.
    Elsewhere (SQLite, `make run`) it is bulk_create. Raises IntegrityError as bulk_create does."""
    if bool(unique_fields) != bool(update_fields):
        raise ValueError("insert_many: unique_fields and update_fields go together")
    if not objs:
        return
    model = type(objs[0])
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objs, update_conflicts=bool(unique_fields), unique_fields=unique_fields,
                                  update_fields=update_fields)  # fmt: skip
        return
    meta, quote = model._meta, connection.ops.quote_name
    fields = [f for f in meta.local_concrete_fields if not f.primary_key]
    names = ", ".join(quote(f.column) for f in fields)
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({names}) SELECT {names} "
        f"FROM {_unnest(fields, 'WITH ORDINALITY ')} ORDER BY position"
    )
    if unique_fields:
        keys = ", ".join(quote(meta.get_field(name).column) for name in unique_fields)
        changes = ", ".join(
            f"{quote(c)} = EXCLUDED.{quote(c)}" for c in (meta.get_field(n).column for n in update_fields)
        )
        sql += f" ON CONFLICT ({keys}) DO UPDATE SET {changes}"
    sql += f" RETURNING {quote(meta.pk.column)}"
    with connection.cursor() as cursor:
        cursor.execute(sql, _columns(objs, fields, timezone.now()))
        pks = [row[0] for row in cursor.fetchall()]
    for obj, pk in zip(objs, pks, strict=True):  # every row comes back, inserted or updated
        obj.pk = pk
        obj._state.adding, obj._state.db = False, connection.alias


def update_many(objs: list[models.Model], fields: list[str]) -> int:
    """UPDATE the named fields of saved model instances, each row its own values, in one
    statement (PostgreSQL: UPDATE ... FROM unnest(...)), like bulk_update, which builds a CASE
    per row and field. An auto_now field is set to now whether named or not. Elsewhere it is
    bulk_update. The number of rows updated."""
    if not objs:
        return 0
    model = type(objs[0])
    meta, quote = model._meta, connection.ops.quote_name
    named = [meta.get_field(name) for name in fields]
    named += [f for f in meta.local_concrete_fields if getattr(f, "auto_now", False) and f not in named]
    if connection.vendor != "postgresql":
        now = timezone.now()
        for field in named:
            if getattr(field, "auto_now", False):
                for obj in objs:
                    setattr(obj, field.attname, now)
        return model.objects.bulk_update(objs, [f.name for f in named])
    table = quote(meta.db_table)
    changes = ", ".join(f"{quote(f.column)} = v.{quote(f.column)}" for f in named)
    pk = meta.pk
    sql = f"UPDATE {table} SET {changes} FROM {_unnest([pk, *named])} WHERE {table}.{quote(pk.column)} = v.{quote(pk.column)}"
    with connection.cursor() as cursor:
        cursor.execute(sql, [[obj.pk for obj in objs], *_columns(objs, named, timezone.now())])
        return cursor.rowcount
