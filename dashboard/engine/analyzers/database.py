"""Analyzers over the database itself: slow queries, missing and unused indexes, cache hit rates.

They read PostgreSQL's statistics views. Index suggestions are CREATE/DROP statements for a
person to review; nothing here ever runs DDL.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from datetime import timedelta as td
from typing import Any

from django.apps import apps
from django.core.cache import cache
from django.db import connection, models

from mcp_core.models import AuditEntry

from ..base import AnalysisContext, Analyzer, Finding, severity_at_least

PROJECT_APPS = ("askpro", "mcp_core", "mcp_servers", "dashboard")


def project_models() -> list[type[models.Model]]:
    return [
        m
        for m in apps.get_models()
        if m.__module__.split(".")[0] in PROJECT_APPS and m._meta.managed and not m._meta.proxy
    ]


def _rows(sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        names = [c.name for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


class PostgresOnly(Analyzer):
    def unavailable(self) -> str | None:
        return None if connection.vendor == "postgresql" else "needs PostgreSQL's statistics views"


def _normalise_sql(sql: str) -> str:
    sql = re.sub(r"'(?:[^']|'')*'", "?", sql)
    sql = re.sub(r"\b\d+(\.\d+)?\b", "?", sql)
    return re.sub(r"\s+", " ", sql).strip().lower()


class SlowQueries(Analyzer):
    name = "slow_queries"
    description = (
        "Slow SQL: pg_stat_statements when it is loaded, else the database server's own query timings."
    )
    defaults = {"mean_ms": 500.0, "min_calls": 3, "window_hours": 24, "limit": 10}

    def unavailable(self) -> str | None:
        return None

    @staticmethod
    def statements_available() -> bool:
        if connection.vendor != "postgresql":
            return False
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")
                if cursor.fetchone() is None:
                    return False
                cursor.execute("SELECT 1 FROM pg_stat_statements LIMIT 1")
            return True
        except Exception:
            # Installed but not preloaded: the view raises. Fall back to our own timings.
            return False

    def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        if self.statements_available():
            rows = _rows(
                "SELECT queryid::text AS id, query, calls, mean_exec_time AS mean_ms, "
                "max_exec_time AS max_ms, total_exec_time AS total_ms, rows "
                "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database "
                "WHERE datname = current_database()) AND calls >= %s AND mean_exec_time >= %s "
                "ORDER BY total_exec_time DESC LIMIT %s",
                [self.option("min_calls"), self.option("mean_ms"), self.option("limit")],
            )
            source = "pg_stat_statements"
        else:
            rows = self._own_timings(ctx)
            source = "audit: database.query timings"
        return [self._finding(row, source, ctx) for row in rows]

    def _own_timings(self, ctx: AnalysisContext) -> list[dict[str, Any]]:
        """Slow runs of database.query from the audit log: one operation's rows by index, bounded."""
        since = ctx.now - td(hours=self.option("window_hours"))
        groups: dict[str, dict[str, Any]] = defaultdict(lambda: {"calls": 0, "total_ms": 0.0, "max_ms": 0.0})
        entries = (
            AuditEntry.objects.filter(
                service="database",
                operation="query",
                created_at__gte=since,
                duration_ms__gte=self.option("mean_ms"),
            )
            .order_by("-duration_ms")
            .values_list("params", "duration_ms")[:2000]
        )
        for params, duration in entries:
            sql = str((params or {}).get("sql", ""))
            if not sql:
                continue
            group = groups[_normalise_sql(sql)]
            group.setdefault("query", sql[:2000])
            group["calls"] += 1
            group["total_ms"] += duration
            group["max_ms"] = max(group["max_ms"], duration)
        rows = []
        for norm, group in groups.items():
            if group["calls"] < self.option("min_calls"):
                continue
            rows.append(
                {
                    "id": hashlib.sha1(norm.encode(), usedforsecurity=False).hexdigest()[:16],
                    "query": group["query"],
                    "calls": group["calls"],
                    "mean_ms": group["total_ms"] / group["calls"],
                    "max_ms": group["max_ms"],
                    "total_ms": group["total_ms"],
                    "window_hours": self.option("window_hours"),
                }
            )
        rows.sort(key=lambda r: -r["total_ms"])
        return rows[: self.option("limit")]

    def _finding(self, row: dict[str, Any], source: str, ctx: AnalysisContext) -> Finding:
        mean = float(row["mean_ms"])
        query = " ".join(str(row["query"]).split())
        return Finding(
            fingerprint=f"query:{row['id']}",
            severity=severity_at_least(mean / self.option("mean_ms"), [(1, "medium"), (4, "high")]),
            title=f"Slow query ({mean:.0f} ms on average, {row['calls']} runs): {query[:120]}",
            evidence={
                "source": source,
                "at": ctx.now.isoformat(),
                "query": query[:2000],
                "calls": int(row["calls"]),
                "mean_ms": round(mean, 1),
                "max_ms": round(float(row["max_ms"]), 1),
                "total_ms": round(float(row["total_ms"]), 1),
                "threshold_ms": self.option("mean_ms"),
                **({"window_hours": row["window_hours"]} if "window_hours" in row else {}),
            },
            suggested_action=(
                "Run EXPLAIN (ANALYZE, BUFFERS) on it: a Seq Scan on a large table wants an index on the "
                "filtered columns; a large Sort wants one in ORDER BY order; select only the columns used."
            ),
        )


def _leading_and_all_columns(table: str) -> tuple[set[str], set[str]]:
    """Columns that lead some index of `table`, and columns that appear in any index of it."""
    leading, anywhere = set(), set()
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    for info in constraints.values():
        columns = [c for c in (info.get("columns") or []) if c]
        if not columns or not (info.get("index") or info.get("unique") or info.get("primary_key")):
            continue
        leading.add(columns[0])
        anywhere.update(columns)
    return leading, anywhere


class MissingIndexes(PostgresOnly):
    name = "missing_indexes"
    description = (
        "Large tables read by sequential scans, tenant foreign keys that lead no index, and filter "
        "columns that are in no index."
    )
    defaults = {
        "min_rows": 10_000,
        "min_seq_scans": 50,
        "filter_columns": ["status", "created_at", "starts_at", "started_at", "appointment_date"],
    }

    def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        by_table = {m._meta.db_table: m for m in project_models()}
        stats = {
            r["relname"]: r
            for r in _rows(
                "SELECT s.relname, s.seq_scan, s.seq_tup_read, COALESCE(s.idx_scan, 0) AS idx_scan, "
                "GREATEST(s.n_live_tup, c.reltuples::bigint) AS rows "
                "FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
                "WHERE s.schemaname = current_schema() AND s.relname = ANY(%s)",
                [list(by_table)],
            )
        }
        findings = []
        min_rows = self.option("min_rows")
        for table, row in sorted(stats.items()):
            rows = int(row["rows"])
            if rows < min_rows or row["seq_scan"] < self.option("min_seq_scans"):
                continue
            avg_read = row["seq_tup_read"] / row["seq_scan"] if row["seq_scan"] else 0
            # Scans that read a small table's worth are fine; ones that read most of a big table are not.
            if row["seq_scan"] <= row["idx_scan"] or avg_read < rows / 2:
                continue
            findings.append(
                Finding(
                    fingerprint=f"seqscan:{table}",
                    severity=severity_at_least(rows, [(0, "medium"), (1_000_000, "high")]),
                    title=f"{table} ({rows:,} rows) is mostly read by sequential scans",
                    evidence={
                        "at": ctx.now.isoformat(),
                        "source": "pg_stat_user_tables (since the statistics were last reset)",
                        "table": table,
                        "rows": rows,
                        "seq_scan": row["seq_scan"],
                        "seq_tup_read": row["seq_tup_read"],
                        "avg_rows_per_seq_scan": round(avg_read),
                        "idx_scan": row["idx_scan"],
                    },
                    suggested_action=(
                        f"Find the queries that scan {table} (slow query recommendations, or "
                        "pg_stat_statements) and index the columns they filter on. Review, then run "
                        "the CREATE INDEX CONCURRENTLY yourself; nothing is applied automatically."
                    ),
                )
            )
        for table, model in sorted(by_table.items()):
            rows = int(stats.get(table, {}).get("rows", 0))
            if rows < min_rows:
                continue
            findings.extend(self._unindexed_columns(table, model, rows, ctx))
        return findings

    def _unindexed_columns(self, table: str, model, rows: int, ctx: AnalysisContext) -> list[Finding]:
        from askpro.models import Company

        leading, anywhere = _leading_and_all_columns(table)
        findings = []
        for field in model._meta.concrete_fields:
            column = field.column
            if field.is_relation and field.related_model is Company:
                if column in leading:
                    continue
                kind, why = "tenant foreign key", "every tenant-scoped query filters on it"
            elif field.name in self.option("filter_columns"):
                if column in anywhere:
                    continue
                kind, why = "filter column", "queries filter or sort on it"
            else:
                continue
            index_name = f"{table}_{column}_idx"[:63]
            statement = f"CREATE INDEX CONCURRENTLY {index_name} ON {table} ({column});"
            if kind == "filter column" and "company_id" in {f.column for f in model._meta.concrete_fields}:
                statement = f"CREATE INDEX CONCURRENTLY {index_name} ON {table} (company_id, {column});"
            findings.append(
                Finding(
                    fingerprint=f"column:{table}.{column}",
                    severity="high" if kind == "tenant foreign key" else "medium",
                    title=f"{table}.{column} ({kind}) is not covered by any index",
                    evidence={
                        "at": ctx.now.isoformat(),
                        "source": "schema introspection",
                        "table": table,
                        "column": column,
                        "kind": kind,
                        "rows": rows,
                        "indexed_leading_columns": sorted(leading),
                    },
                    suggested_action=(
                        f"{why.capitalize()}, so each such query reads the whole table. Add the index in a "
                        f"migration after review: {statement}"
                    ),
                )
            )
        return findings


class UnusedIndexes(PostgresOnly):
    name = "unused_indexes"
    description = (
        "Indexes never used for a scan since the statistics were reset (and not enforcing uniqueness)."
    )
    defaults = {"min_size_bytes": 8 * 1024 * 1024}

    def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        tables = [m._meta.db_table for m in project_models()]
        rows = _rows(
            "SELECT s.relname AS table_name, s.indexrelname AS index_name, s.idx_scan, "
            "pg_relation_size(s.indexrelid) AS size_bytes, pg_get_indexdef(s.indexrelid) AS definition, "
            "(SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()) AS stats_since "
            "FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid "
            "WHERE s.schemaname = current_schema() AND s.relname = ANY(%s) AND s.idx_scan = 0 "
            "AND NOT i.indisunique AND NOT i.indisprimary AND pg_relation_size(s.indexrelid) >= %s "
            "ORDER BY pg_relation_size(s.indexrelid) DESC",
            [tables, self.option("min_size_bytes")],
        )
        return [
            Finding(
                fingerprint=f"index:{row['index_name']}",
                severity="low",
                title=f"Index {row['index_name']} on {row['table_name']} has never been used "
                f"({row['size_bytes'] / 1048576:.1f} MB)",
                evidence={
                    "at": ctx.now.isoformat(),
                    "source": "pg_stat_user_indexes",
                    "table": row["table_name"],
                    "index": row["index_name"],
                    "idx_scan": row["idx_scan"],
                    "size_bytes": row["size_bytes"],
                    "definition": row["definition"],
                    "stats_since": row["stats_since"].isoformat() if row["stats_since"] else None,
                },
                suggested_action=(
                    "It costs space and slows every write. If the statistics cover a full business "
                    "cycle (month-end reports included), remove it in a migration: "
                    f"DROP INDEX CONCURRENTLY {row['index_name']};"
                ),
            )
            for row in rows
        ]


class CacheHitRate(Analyzer):
    name = "cache_hit_rate"
    description = (
        "PostgreSQL buffer cache and Redis keyspace hit ratios since the previous run, below the threshold."
    )
    defaults = {"postgresql_min_ratio": 0.95, "redis_min_ratio": 0.80, "min_lookups": 1000}
    SAMPLE_KEY = "dashboard:cache_hit_rate:sample"

    def _postgres(self) -> tuple[int, int] | None:
        if connection.vendor != "postgresql":
            return None
        row = _rows(
            "SELECT blks_hit AS hits, blks_read AS misses FROM pg_stat_database WHERE datname = current_database()"
        )[0]
        return int(row["hits"]), int(row["misses"])

    def _redis(self) -> tuple[int, int] | None:
        try:
            from django_redis import get_redis_connection

            info = get_redis_connection("default").info("stats")
        except Exception:
            return None  # not a Redis cache, or unreachable: nothing to measure
        return int(info.get("keyspace_hits", 0)), int(info.get("keyspace_misses", 0))

    def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        current = {"postgresql": self._postgres(), "redis": self._redis()}
        previous = cache.get(self.SAMPLE_KEY) or {}
        cache.set(self.SAMPLE_KEY, {**current, "at": ctx.now.isoformat()}, timeout=None)
        findings = []
        for source, sample in current.items():
            if sample is None:
                continue
            hits, misses = sample
            before = previous.get(source)
            since = previous.get("at")
            # Counters are cumulative: measure the change since the previous run when there is one
            # (and the counters did not go back, i.e. were not reset).
            if before and before[0] <= hits and before[1] <= misses:
                hits, misses = hits - before[0], misses - before[1]
            else:
                since = None
            lookups = hits + misses
            if lookups < self.option("min_lookups"):
                continue
            ratio = hits / lookups
            threshold = self.option(f"{source}_min_ratio")
            if ratio >= threshold:
                continue
            findings.append(
                Finding(
                    fingerprint=source,
                    severity="medium" if ratio >= threshold - 0.2 else "high",
                    title=f"{source} cache hit ratio is {ratio:.1%} (threshold {threshold:.0%})",
                    evidence={
                        "at": ctx.now.isoformat(),
                        "since": since or "statistics reset",
                        "hits": hits,
                        "misses": misses,
                        "ratio": round(ratio, 4),
                        "threshold": threshold,
                    },
                    suggested_action=(
                        "PostgreSQL: the working set does not fit shared_buffers; raise it or cut what "
                        "large scans read (see the index recommendations)."
                        if source == "postgresql"
                        else "Redis: look for keys read before they are ever written or that expire too "
                        "soon (TTL shorter than the read interval), and for maxmemory evictions."
                    ),
                )
            )
        return findings
