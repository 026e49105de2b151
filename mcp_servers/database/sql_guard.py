"""The read-only SQL guard: one SELECT over allow-listed tables, checked by a real parser.

The parser is the first of three fences. The second is the database itself: PostgreSQL
runs the statement in a read-only transaction under a statement timeout, SQLite under an
authorizer that denies writes and unlisted tables. The third is the row cap.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from functools import lru_cache

import sqlglot
from django.apps import apps
from django.conf import settings
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.optimizer.scope import traverse_scope

from askpro.crypto import EncryptedTextField

# Statement kinds that change something, anywhere in the tree (writable CTEs included).
_FORBIDDEN_NODES: tuple[type[exp.Expression], ...] = tuple(
    getattr(exp, name)
    for name in (
        "Insert",
        "Update",
        "Delete",
        "Merge",
        "Create",
        "Drop",
        "Alter",
        "Command",
        "Copy",
        "TruncateTable",
        "Set",
        "Transaction",
        "Commit",
        "Rollback",
        "Grant",
        "Use",
        "Pragma",
        "Lock",
        "Into",
        "LoadData",
        "Analyze",
    )
    if hasattr(exp, name)
)
# Control characters other than tab, line feed and carriage return.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_READ_ROOTS = (exp.Select, exp.Union, exp.Intersect, exp.Except)
# Functions sqlglot does not model itself; only these are allowed. pg_sleep is harmless in
# itself and bounded by the statement timeout.
ALLOWED_UNMODELLED_FUNCTIONS = frozenset(
    {
        "pg_sleep",
        "date_part",
        "to_char",
        "to_date",
        "age",
        "nullif",
        "strftime",
        "julianday",
        "ifnull",
        "printf",
        "date",
        "datetime",
        "initcap",
        "split_part",
        "regexp_replace",
        "char_length",
        "octet_length",
        "round",
        "abs",
        "btrim",
        "ltrim",
        "rtrim",
    }
)


class UnsafeQuery(ValueError):
    """The query was refused; the message says why and names the offending part.

    `problem` is "invalid" when the text is not SQL the parser can read, "unsafe" when it is
    SQL that is not allowed.
    """

    def __init__(self, message: str, *, problem: str = "unsafe") -> None:
        super().__init__(message)
        self.problem = problem


@dataclass(frozen=True)
class CheckedQuery:
    sql: str
    tables: frozenset[str]


@lru_cache(maxsize=1)
def secret_columns() -> dict[str, frozenset[str]]:
    """db_table -> columns holding secrets, found from the models (encrypted fields)."""
    found: dict[str, set[str]] = {}
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, EncryptedTextField):
                found.setdefault(model._meta.db_table, set()).add(field.column)
    return {table: frozenset(cols) for table, cols in found.items()}


def allowed_tables() -> frozenset[str]:
    return frozenset(settings.MCP_DATABASE_ALLOWED_TABLES)


def check_query(sql: str, *, dialect: str, any_table: bool = False) -> CheckedQuery:
    """Parse and vet one statement; raise UnsafeQuery with a reason a person can act on.

    any_table skips the table allow-list and secret-column checks: only for a plain EXPLAIN,
    which plans a statement without reading any row.
    """
    sql = sql.strip().rstrip(";").strip()
    if not sql:
        raise UnsafeQuery("sql: is empty", problem="invalid")
    control = _CONTROL.search(sql)
    if control:
        # The tokenizer would take them as part of a name; they are never SQL.
        raise UnsafeQuery(
            f"sql: holds a control character (U+{ord(control.group()):04X}) at position {control.start()}",
            problem="invalid",
        )
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except ParseError as exc:
        raise UnsafeQuery(
            f"sql: cannot be parsed ({exc.errors[0]['description'] if exc.errors else exc})",
            problem="invalid",
        ) from None
    except TokenError:
        # An unterminated comment, quote or dollar-quoted string, or a character the dialect
        # has no token for: sqlglot's message quotes the text, so say it in our own words.
        raise UnsafeQuery(
            "sql: cannot be read (an unterminated comment, quoted string or identifier, "
            "or a character that is not SQL)",
            problem="invalid",
        ) from None
    except RecursionError:
        raise UnsafeQuery("sql: is nested too deeply to be checked", problem="invalid") from None
    if len(statements) != 1:
        raise UnsafeQuery(f"sql: exactly one statement is allowed, found {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, _READ_ROOTS):
        raise UnsafeQuery(f"sql: only SELECT is allowed, not {tree.key.upper()}")
    for node in tree.walk():
        if isinstance(node, _FORBIDDEN_NODES):
            raise UnsafeQuery(f"sql: {node.key.upper()} is not allowed in a read-only query")
        if isinstance(node, exp.Anonymous):
            name = node.name.lower()
            if name not in ALLOWED_UNMODELLED_FUNCTIONS:
                raise UnsafeQuery(f"sql: function {name}() is not allowed")
    cte_refs = _cte_references(tree)
    tables: set[str] = set()
    allowed = allowed_tables()
    for table in tree.find_all(exp.Table):
        name = table.name.lower()
        schema = (table.db or "").lower()
        if not name:
            # a table-valued function such as generate_series()
            continue
        if id(table) in cte_refs:
            continue
        if schema not in {"", "public", "main"} or name not in allowed:
            shown = f"{schema}.{name}" if schema else name
            raise UnsafeQuery(f"sql: table {shown!r} is not in the allow-list")
        tables.add(name)
    secrets = secret_columns()
    guarded = {name for name in tables if name in secrets}
    all_secret = set().union(*(secrets[name] for name in guarded)) if guarded else set()
    # A table's name or alias used as a value is a whole-row reference on PostgreSQL
    # (`SELECT c::text FROM askpro_company c`), which carries every column, secrets included.
    row_names = {
        alias
        for table in tree.find_all(exp.Table)
        if table.name.lower() in guarded
        for alias in (table.name.lower(), table.alias_or_name.lower())
    }
    for column in tree.find_all(exp.Column):
        name = column.name.lower()
        if name in all_secret:
            raise UnsafeQuery(f"sql: column {column.name!r} holds a secret and cannot be read")
        if name in row_names:
            raise UnsafeQuery(
                f"sql: {column.name!r} refers to a whole row of a table with secret columns; list the columns"
            )
    # count(*) reads no column; any other star would expand to the secret columns.
    if guarded and any(not isinstance(star.parent, exp.Count) for star in tree.find_all(exp.Star)):
        raise UnsafeQuery(
            f"sql: SELECT * is not allowed on {', '.join(sorted(guarded))}; list the columns (secret columns are excluded)"
        )
    return CheckedQuery(sql=sql, tables=frozenset(tables))


def _cte_references(tree: exp.Expression) -> set[int]:
    """ids of the Table nodes that name a CTE visible in their own scope.

    A CTE name is only in force inside the query that defines it; deciding by name over the
    whole tree would let `(WITH auth_user AS (...) ...) x, auth_user` read the real table.
    If scope analysis fails, no table counts as a CTE: that can refuse a query, never widen it.
    """
    try:
        scopes = traverse_scope(tree)
    except Exception:
        return set()
    refs: set[int] = set()
    for scope in scopes:
        for table in scope.tables:
            if not table.db and table.name in scope.cte_sources:
                refs.add(id(table))
    return refs


def sqlite_authorizer(allowed: frozenset[str], secrets: dict[str, frozenset[str]]):
    """An sqlite3 authorizer that allows reading listed tables and nothing else."""

    def authorize(action, arg1, arg2, db_name, trigger):
        if action == sqlite3.SQLITE_SELECT or action == getattr(sqlite3, "SQLITE_RECURSIVE", 33):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_READ:
            table = (arg1 or "").lower()
            if not table or db_name is None:
                # The result of a CTE or subquery: stored tables always come with their
                # database name (main, temp or an attached one).
                return sqlite3.SQLITE_OK
            if table not in allowed or (arg2 or "").lower() in secrets.get(table, frozenset()):
                return sqlite3.SQLITE_DENY
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION:
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY

    return authorize
