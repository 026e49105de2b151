"""Query analysis for the database server: EXPLAIN of one SELECT, and index suggestions for
slow query shapes with the evidence behind them. Suggestions are text; nothing runs DDL."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from django.db import connection
from sqlglot import exp
from sqlglot.errors import ParseError

_RANGE_OPS = (exp.GT, exp.GTE, exp.LT, exp.LTE)


@dataclass
class PlanSummary:
    plan: Any
    total_cost: float | None
    estimated_rows: float | None
    actual_ms: float | None
    seq_scans: list[dict[str, Any]] = field(default_factory=list)
    index_scans: list[str] = field(default_factory=list)


def explain(sql: str, *, analyze: bool) -> PlanSummary:
    """EXPLAIN the (already vetted) statement on the current connection."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            options = "FORMAT JSON, ANALYZE, BUFFERS" if analyze else "FORMAT JSON"
            cursor.execute(f"EXPLAIN ({options}) {sql}")
            raw = cursor.fetchone()[0]
            plan = raw if isinstance(raw, list) else json.loads(raw)
            return _summarise_pg(plan)
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
        rows = cursor.fetchall()
    details = [str(row[-1]) for row in rows]
    seq = []
    for detail in details:
        match = re.match(r"SCAN (?:TABLE )?(\w+)", detail)
        if match and "USING" not in detail:
            seq.append({"table": match.group(1), "filter": None, "estimated_rows": None})
    index_scans = [d for d in details if "USING" in d and "INDEX" in d]
    return PlanSummary(
        plan=details,
        total_cost=None,
        estimated_rows=None,
        actual_ms=None,
        seq_scans=seq,
        index_scans=index_scans,
    )


def _summarise_pg(plan: list[dict[str, Any]]) -> PlanSummary:
    root = plan[0]["Plan"]
    summary = PlanSummary(
        plan=plan,
        total_cost=root.get("Total Cost"),
        estimated_rows=root.get("Plan Rows"),
        actual_ms=plan[0].get("Execution Time"),
    )

    def walk(node: dict[str, Any]) -> None:
        kind = node.get("Node Type", "")
        if kind == "Seq Scan":
            summary.seq_scans.append(
                {
                    "table": node.get("Relation Name"),
                    "filter": node.get("Filter"),
                    "estimated_rows": node.get("Plan Rows"),
                }
            )
        elif "Index" in kind and node.get("Index Name"):
            summary.index_scans.append(f"{node.get('Relation Name')}.{node.get('Index Name')}")
        for child in node.get("Plans", []):
            walk(child)

    walk(root)
    return summary


@dataclass
class IndexSuggestion:
    table: str
    columns: list[str]
    statement: str
    reason: str
    evidence: dict[str, Any]


def _parseable(sql: str) -> str:
    # Captured shapes carry placeholders; any literal keeps the structure the planner sees.
    return sql.replace("(?…)", "(0)").replace("%s", "0").replace("?", "0")


def predicate_columns(sql: str) -> dict[str, dict[str, list[str]]]:
    """table -> {"equality": [...], "range": [...], "order": [...]} columns a query filters on."""
    dialect = "postgres" if connection.vendor == "postgresql" else "sqlite"
    try:
        tree = sqlglot.parse_one(_parseable(sql), read=dialect)
    except ParseError:
        return {}
    if tree is None:
        return {}
    aliases: dict[str, str] = {}
    tables: list[str] = []
    for table in tree.find_all(exp.Table):
        if table.name:
            tables.append(table.name)
            aliases[(table.alias or table.name).lower()] = table.name
    found: dict[str, dict[str, list[str]]] = {}

    def note(column: exp.Column, kind: str) -> None:
        owner = (
            aliases.get(column.table.lower())
            if column.table
            else (tables[0] if len(set(tables)) == 1 else None)
        )
        if owner is None or not column.name:
            return
        bucket = found.setdefault(owner, {"equality": [], "range": [], "order": []})[kind]
        if column.name not in bucket:
            bucket.append(column.name)

    for where in [
        *tree.find_all(exp.Where),
        *[j.args.get("on") for j in tree.find_all(exp.Join) if j.args.get("on")],
    ]:
        for predicate in where.find_all(exp.EQ, exp.In, *_RANGE_OPS):
            kind = "range" if isinstance(predicate, _RANGE_OPS) else "equality"
            left = predicate.this if isinstance(predicate, exp.In) else predicate.left
            right = None if isinstance(predicate, exp.In) else predicate.right
            if isinstance(left, exp.Column) and not isinstance(right, exp.Column):
                note(left, kind)
            elif isinstance(right, exp.Column) and not isinstance(left, exp.Column):
                note(right, kind)
    for order in tree.find_all(exp.Order):
        for column in order.find_all(exp.Column):
            note(column, "order")
    return found


def existing_indexes(table: str) -> list[list[str]]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    return [
        list(c["columns"])
        for c in constraints.values()
        if (c.get("index") or c.get("primary_key") or c.get("unique")) and c["columns"]
    ]


def table_statistics(table: str) -> dict[str, Any]:
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(table)}")
            return {"rows": cursor.fetchone()[0]}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.reltuples::bigint, s.seq_scan, s.seq_tup_read, s.idx_scan FROM pg_class c "
            "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.relname = %s AND c.relkind = 'r'",
            [table],
        )
        row = cursor.fetchone()
    if row is None:
        return {}
    return {
        "rows_estimate": max(int(row[0]), 0),
        "seq_scans": row[1],
        "seq_rows_read": row[2],
        "index_scans": row[3],
    }


def suggest_indexes(sql: str) -> list[IndexSuggestion]:
    """An index per table whose filter columns no existing index leads with."""
    suggestions = []
    known_tables = set(connection.introspection.table_names())
    for table, columns in predicate_columns(sql).items():
        if table not in known_tables:
            continue
        wanted = columns["equality"] + [c for c in columns["range"] if c not in columns["equality"]]
        if not wanted:
            wanted = columns["order"][:1]
        if not wanted:
            continue
        wanted = wanted[:3]
        indexes = existing_indexes(table)
        if any(index[: len(wanted)] == wanted or index[0] == wanted[0] for index in indexes):
            continue
        name = f"{table}_{'_'.join(wanted)}_idx"[:63]
        cols = ", ".join(connection.ops.quote_name(c) for c in wanted)
        concurrently = " CONCURRENTLY" if connection.vendor == "postgresql" else ""
        suggestions.append(
            IndexSuggestion(
                table=table,
                columns=wanted,
                statement=f"CREATE INDEX{concurrently} {connection.ops.quote_name(name)} ON {connection.ops.quote_name(table)} ({cols});",
                reason=f"the query filters {table} on {', '.join(wanted)} and no index starts with {wanted[0]}",
                evidence={"existing_indexes": indexes, **table_statistics(table)},
            )
        )
    return suggestions
