"""Run a vetted SELECT and keep its answer within a row cap and a byte cap, bounding the
memory of this process while fetching, not after.

The statement is wrapped so that the database hands each row over as one JSON text cut to
at most `max_bytes + 1` characters: PostgreSQL builds `row_to_json` of the row and sends
only its first characters (a 100 MB value never crosses the wire), SQLite builds
`json_array` of the row under a length limit (SQLite runs in this process, so that limit is
what bounds its memory). Rows are read one at a time (psycopg's streaming mode, sqlite3's
lazy cursor) and reading stops as soon as the byte budget is spent; PostgreSQL's statement
is then cancelled, so it stops computing rows nobody will read.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
from django.db import DataError, connection

_BYTEA_OID = 17
# SQLite refuses to build a string or blob longer than this many times the byte cap; a
# value that long could not be shown whole anyway, and SQLite's memory is this process's.
SQLITE_LENGTH_FACTOR = 4
SQLITE_MIN_LENGTH = 4 * 1024 * 1024
_DECODER = json.JSONDecoder()


@dataclass
class BoundedAnswer:
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    # [row, column] of every value cut short (a prefix of its text) or left out (None).
    cut_values: list[list[int]] = field(default_factory=list)
    truncated_by: str | None = None  # "max_rows" | "max_bytes"
    note: str | None = None


def sqlite_length_limit(max_bytes: int) -> int:
    return max(SQLITE_MIN_LENGTH, SQLITE_LENGTH_FACTOR * (max_bytes + 1))


def run_bounded(sql: str, *, max_rows: int, max_bytes: int) -> BoundedAnswer:
    """Run `sql` (already vetted, inside the caller's read-only deadline transaction)."""
    columns, type_codes = _describe(sql)
    if connection.vendor == "postgresql":
        rows = _pg_rows(sql, len(columns), max_rows=max_rows, max_bytes=max_bytes)
    else:
        rows = _sqlite_rows(sql, len(columns), max_rows=max_rows, max_bytes=max_bytes)
    answer = BoundedAnswer(columns=columns)
    bytea = {i for i, code in enumerate(type_codes) if code == _BYTEA_OID}
    used = 2  # the brackets of the rows list
    try:
        for text in rows:
            if len(answer.rows) == max_rows:
                answer.truncated_by = "max_rows"
                break
            values, cut_at = _parse_row(text, len(columns), cut=len(text) > max_bytes)
            for i in bytea:
                if isinstance(values[i], str) and values[i].startswith("\\x"):
                    values[i] = values[i][2:]  # PostgreSQL's hex form: the same hex as SQLite's
            size = len(msgspec.json.encode(values)) + 1  # and its comma
            if cut_at is None and used + size <= max_bytes:
                answer.rows.append(values)
                used += size
                continue
            # The row that crosses the cap goes in cut to what is left; the answer ends there.
            fitted, cut = _fit(values, cut_at, max_bytes - used - 1)
            row = len(answer.rows)
            answer.rows.append(fitted)
            answer.cut_values += [[row, column] for column in cut]
            answer.truncated_by = "max_bytes"
            break
    except _ValueTooBig:
        answer.truncated_by = "max_bytes"
        answer.note = (
            f"row {len(answer.rows) + 1} holds a value longer than {sqlite_length_limit(max_bytes)} "
            "bytes, which SQLite does not build here; select a part of it (substr) to see it"
        )
    finally:
        # Ends the statement: PostgreSQL's is cancelled if rows are still coming.
        rows.close()
    return answer


def _describe(sql: str) -> tuple[list[str], list[Any]]:
    """Column names (and PostgreSQL type oids) without fetching a row."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM (\n{sql}\n) AS q LIMIT 0")
        description = list(cursor.description or [])
    names = [col[0] for col in description]
    if connection.vendor == "sqlite":
        names = _undo_sqlite_renames(names)
    return names, [getattr(col, "type_code", None) for col in description]


def _undo_sqlite_renames(names: list[str]) -> list[str]:
    """SQLite renames a repeated column name in a subquery `a`, `a:1`, ...; the statement
    itself named both `a`, so that is what the answer says."""
    seen: set[str] = set()
    out = []
    for name in names:
        match = re.fullmatch(r"(.*):\d+", name)
        if match and match.group(1) in seen:
            name = match.group(1)
        seen.add(name)
        out.append(name)
    return out


def _aliases(width: int) -> list[str]:
    return [f"c{i + 1}" for i in range(width)]


def _pg_rows(sql: str, width: int, *, max_rows: int, max_bytes: int) -> Iterator[str]:
    alias = f"({', '.join(_aliases(width))})" if width else ""
    wrapped = (
        f"SELECT left(row_to_json(q)::text, {int(max_bytes) + 1}) "
        f"FROM (\n{sql}\n) AS q{alias} LIMIT {int(max_rows) + 1}"
    )
    with connection.cursor() as cursor, connection.wrap_database_errors:
        # psycopg's own cursor: streaming mode reads one row at a time off the wire.
        stream = cursor.cursor.stream(wrapped)
        try:
            for (text,) in stream:
                yield text
        finally:
            # Closing the stream early cancels the statement and drains what was already sent.
            stream.close()


def _sqlite_rows(sql: str, width: int, *, max_rows: int, max_bytes: int) -> Iterator[str]:
    names = _aliases(width)
    # json_array cannot hold a blob: show it as hex, as PostgreSQL's bytea is shown.
    values = ", ".join(f"CASE WHEN typeof({c}) = 'blob' THEN lower(hex({c})) ELSE {c} END" for c in names)
    wrapped = (
        f"WITH q({', '.join(names)}) AS (\n{sql}\n) "
        f"SELECT substr(json_array({values}), 1, {int(max_bytes) + 1}) FROM q LIMIT {int(max_rows) + 1}"
    )
    connection.ensure_connection()
    raw = connection.connection
    previous = raw.getlimit(sqlite3.SQLITE_LIMIT_LENGTH)
    raw.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, sqlite_length_limit(max_bytes))
    try:
        with connection.cursor() as cursor:
            try:
                cursor.execute(wrapped)
                # sqlite3 steps the statement as rows are asked for: one row in memory at a time.
                while (row := cursor.fetchone()) is not None:
                    yield row[0]
            except DataError as exc:
                if "too big" not in str(exc):
                    raise
                raise _ValueTooBig from None
    finally:
        raw.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, previous)


class _ValueTooBig(Exception):
    """SQLite would not build a value within its length limit."""


def _parse_row(text: str, width: int, *, cut: bool) -> tuple[list[Any], int | None]:
    """The values of one row from its JSON text (an object c1..cN, or an array).

    When the text was cut, the values before the cut are exact, the value at the cut is the
    beginning of its text and the rest are None; the second item is the index of the first
    value that is not exact (None when the whole row is there).
    """
    if not cut:
        parsed = json.loads(text)
        return (list(parsed.values()) if isinstance(parsed, dict) else list(parsed)), None
    text = text[:-1]  # one character over the cap was asked for only to tell a cut text
    keyed = text.startswith("{")
    pos = 1
    values: list[Any] = []
    for index in range(width):
        if index:
            pos += 1  # the comma
        if keyed:
            key = f'"c{index + 1}":'
            if not text.startswith(key, pos):
                return values + [None] * (width - index), index
            pos += len(key)
        start = pos
        try:
            value, pos = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError:
            values.append(_partial_value(text[start:]))
            return values + [None] * (width - index - 1), index
        if pos >= len(text) and isinstance(value, int | float) and not isinstance(value, bool):
            # A number running into the cut may have lost digits.
            values.append(text[start:])
            return values + [None] * (width - index - 1), index
        values.append(value)
    return values, None


def _partial_value(fragment: str) -> str:
    """The readable beginning of a JSON value cut short: a string's characters, or the text of
    a number, array or object as far as it goes."""
    if not fragment.startswith('"'):
        return fragment
    # Drop a trailing half escape sequence (at most 5 characters of \\uXXXX) until it decodes.
    for drop in range(7):
        try:
            return json.loads(fragment[: len(fragment) - drop] + '"')
        except json.JSONDecodeError:
            continue
    return ""


def _fit(values: list[Any], inexact: int | None, budget: int) -> tuple[list[Any], list[int]]:
    """The row cut to at most `budget` bytes of JSON, and the indexes of the values cut short
    or left out. Values from `inexact` on are already a prefix (or None) from the cut text."""
    fitted: list[Any] = []
    used = 2  # brackets
    for index, value in enumerate(values):
        comma = 1 if index else 0
        if index != inexact:
            size = len(msgspec.json.encode(value)) + comma
            if used + size <= budget:
                fitted.append(value)
                used += size
                continue
        if value is not None or index != inexact:
            text = value if isinstance(value, str) else msgspec.json.encode(value).decode()
            nulls = 5 * (len(values) - index - 1)  # ",null" for each value left out after it
            value = _shorten(text, max(0, budget - used - comma - nulls))
        fitted.append(value)
        # Nothing after a cut value is shown: the rest of the row is left out.
        fitted += [None] * (len(values) - index - 1)
        return fitted, list(range(index, len(values)))
    return fitted, []


def _shorten(text: str, room: int) -> str:
    """The longest prefix of `text` whose JSON string takes at most `room` bytes."""
    if room <= 2:
        return ""
    raw = text.encode()[: room - 2].decode(errors="ignore")
    while raw and len(msgspec.json.encode(raw)) > room:
        # Escapes (quotes, control characters) made it longer: drop what overflows.
        overflow = len(msgspec.json.encode(raw)) - room
        raw = raw[: max(0, len(raw) - max(1, overflow))]
    return raw
