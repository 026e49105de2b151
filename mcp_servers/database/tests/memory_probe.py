"""Run database.query for each SQL given on the command line, the way a worker process does
(through the pipeline), and print per query the answer's shape and how far this process's
peak resident memory rose above what it held before the call. Nothing it does is kept: each
call runs in a transaction that is rolled back."""

from __future__ import annotations

import json
import sys


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    # Writing 5 to clear_refs resets VmHWM to the current resident size (Linux >= 4.0).
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def main(queries: list[str]) -> None:
    import django

    django.setup()
    from django.db import transaction

    from mcp_core.contracts import SYSTEM_PRINCIPAL
    from mcp_core.pipeline import call_operation

    def call(sql: str):
        with transaction.atomic():
            response = call_operation("database", "query", {"sql": sql}, principal=SYSTEM_PRINCIPAL)
            transaction.set_rollback(True)
        return response

    warm = call("SELECT 1 AS one")  # imports, registry, connection: not what is measured
    assert warm.success, warm.error
    results = []
    for sql in queries:
        _reset_peak()
        before = _status_kb("VmRSS")
        response = call(sql)
        peak = _status_kb("VmHWM")
        data = response.data or {}
        rows = data.get("rows", [])
        results.append(
            {
                "sql": sql[:80],
                "success": response.success,
                "error": response.error,
                "truncated_by": data.get("truncated_by"),
                "row_count": data.get("row_count"),
                "rows_json_bytes": len(json.dumps(rows, ensure_ascii=False, separators=(",", ":")).encode()),
                "peak_growth_mb": round((peak - before) / 1024, 1),
            }
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1:])
