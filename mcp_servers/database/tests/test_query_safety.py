"""SQL safety of database.query: every write, stacked statement, side-effect function,
runaway query and unlisted table is refused or stopped, with nothing changed.

The same module runs on PostgreSQL (the test database) and, through
test_it_holds_on_sqlite_too, in a child pytest on a real SQLite file, where the
authorizer of sql_guard and the progress-handler deadline of mcp_core.db are the fences.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import DatabaseError, connection
from django.test import override_settings

from mcp_core.api_keys import api_key_authenticate
from mcp_core.contracts import MCPRequest, OperationContext
from mcp_core.db import deadline_transaction
from mcp_core.pipeline import call_operation
from mcp_servers.database.sql_guard import allowed_tables, secret_columns, sqlite_authorizer

SECRET = "cal_live_TOPSECRET_do_not_leak_123"
WATCHED_TABLES = sorted(allowed_tables() | {"auth_user", "mcp_core_apikey"})

REFUSED = [
    (
        "insert",
        "INSERT INTO askpro_customer (company_id, name, email, phone, notes, created_at) "
        "SELECT id, 'x', '', '', '', created_at FROM askpro_company",
    ),
    ("update", "UPDATE askpro_customer SET name = 'hacked'"),
    ("delete", "DELETE FROM askpro_customer"),
    ("create table", "CREATE TABLE hacked (x integer)"),
    ("create table as", "CREATE TABLE hacked AS SELECT * FROM askpro_customer"),
    ("drop table", "DROP TABLE askpro_customer"),
    ("alter table", "ALTER TABLE askpro_customer ADD COLUMN hacked integer"),
    ("truncate", "TRUNCATE askpro_customer"),
    ("two statements", "SELECT 1; SELECT 2"),
    ("select then drop", "SELECT id FROM askpro_customer; DROP TABLE askpro_customer"),
    ("select then delete", "SELECT 1; DELETE FROM askpro_customer"),
    ("writable CTE delete", "WITH d AS (DELETE FROM askpro_customer RETURNING *) SELECT count(*) FROM d"),
    (
        "writable CTE update",
        "WITH u AS (UPDATE askpro_customer SET name = 'x' RETURNING id) SELECT id FROM u",
    ),
    (
        "writable CTE insert",
        "WITH i AS (INSERT INTO askpro_branch (name) VALUES ('x') RETURNING id) SELECT id FROM i",
    ),
    ("set_config", "SELECT set_config('statement_timeout', '0', false)"),
    ("qualified set_config", "SELECT pg_catalog.set_config('statement_timeout', '0', false)"),
    ("nextval", "SELECT nextval('askpro_customer_id_seq')"),
    ("setval", "SELECT setval('askpro_customer_id_seq', 1)"),
    ("pg_terminate_backend", "SELECT pg_terminate_backend(pg_backend_pid())"),
    ("pg_cancel_backend", "SELECT pg_cancel_backend(1)"),
    ("lo_import", "SELECT lo_import('/etc/passwd')"),
    ("pg_advisory_lock", "SELECT pg_advisory_lock(4242)"),
    ("dblink", "SELECT * FROM dblink('dbname=postgres', 'DROP TABLE x') AS t(x text)"),
    ("dblink_exec", "SELECT dblink_exec('dbname=postgres', 'DROP TABLE x')"),
    ("pg_read_file", "SELECT pg_read_file('/etc/passwd')"),
    ("query_to_xml", "SELECT query_to_xml('DELETE FROM askpro_customer RETURNING 1', true, true, '')"),
    ("load_extension", "SELECT load_extension('/tmp/evil')"),
    ("select for update", "SELECT id FROM askpro_customer FOR UPDATE"),
    ("select for share", "SELECT id FROM askpro_customer FOR SHARE"),
    ("select into", "SELECT id INTO hacked FROM askpro_customer"),
    ("copy to file", "COPY askpro_customer TO '/tmp/askpro-leak.csv'"),
    ("copy to program", "COPY (SELECT 1) TO PROGRAM 'id'"),
    ("explain analyze delete", "EXPLAIN ANALYZE DELETE FROM askpro_customer"),
    ("attach", "ATTACH DATABASE '/tmp/askpro-evil.db' AS evil"),
    ("pragma", "PRAGMA writable_schema = 1"),
    ("vacuum", "VACUUM"),
    ("pg_user", "SELECT usename, passwd FROM pg_catalog.pg_user"),
    ("pg_shadow unqualified", "SELECT * FROM pg_shadow"),
    ("auth_user", "SELECT username, password FROM auth_user"),
    ("api keys", "SELECT prefix, secret_hash FROM mcp_core_apikey"),
    ("information_schema", "SELECT table_name FROM information_schema.tables"),
    ("sqlite_master", "SELECT sql FROM sqlite_master"),
    ("subquery on auth_user", "SELECT (SELECT count(*) FROM auth_user) FROM askpro_customer"),
    (
        "CTE name shadowing a real table",
        "SELECT k.secret_hash FROM (WITH mcp_core_apikey AS (SELECT 1 AS x) SELECT x FROM mcp_core_apikey) s, "
        "mcp_core_apikey k",
    ),
    ("secret column", "SELECT calcom_api_key FROM askpro_company"),
    ("secret column qualified", "SELECT c.stripe_secret_key FROM askpro_company c"),
    ("secret column in a subquery", "SELECT x.k FROM (SELECT retell_api_key AS k FROM askpro_company) x"),
    ("secret column in WHERE", "SELECT id FROM askpro_company WHERE calcom_api_key LIKE 'cal_live%'"),
    ("select star on company", "SELECT * FROM askpro_company"),
    ("alias star on company", "SELECT c.* FROM askpro_company c"),
    ("TABLE company", "TABLE askpro_company"),
    ("whole-row reference", "SELECT c::text FROM askpro_company c"),
    ("whole-row aggregate", "SELECT json_agg(c) FROM askpro_company c"),
    ("whole-row field access", "SELECT (askpro_company).calcom_api_key FROM askpro_company"),
    ("empty", "  ;  "),
    ("garbage", "SELEC id FROM"),
]


@pytest.fixture
def data(alice, bob):
    alice.calcom_api_key = SECRET
    alice.save(update_fields=["calcom_api_key"])
    return alice, bob


@pytest.fixture
def admin(key_factory):
    return api_key_authenticate(key_factory(tenant=None, scopes=["database:admin"]))


def row_counts() -> dict[str, int]:
    """Rows per watched table, in one round trip."""
    counts = ", ".join(f"(SELECT count(*) FROM {connection.ops.quote_name(t)})" for t in WATCHED_TABLES)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {counts}")
        return dict(zip(WATCHED_TABLES, cursor.fetchone(), strict=True))


def table_names() -> set[str]:
    with connection.cursor() as cursor:
        return set(connection.introspection.table_names(cursor))


def query(principal, sql: str, **params):
    return call_operation("database", "query", {"sql": sql, **params}, principal=principal)


def test_it_runs_on_the_expected_database():
    expected = "sqlite" if os.environ.get("ASKPRO_EXPECT_SQLITE") else "postgresql"
    assert connection.vendor == expected


@pytest.mark.parametrize(("label", "sql"), REFUSED, ids=[label for label, _ in REFUSED])
def test_it_refuses_unsafe_sql_and_changes_nothing(label, sql, data, admin):
    before, tables = row_counts(), table_names()
    response = query(admin, sql)
    assert not response.success, response.data
    assert response.error["code"] == "validation_error", response.error
    assert response.error["details"]["field"] == "sql", response.error
    assert SECRET not in str(response.error)
    assert row_counts() == before
    assert table_names() == tables
    # The connection is still healthy afterwards, and nothing of the refusal lingers.
    assert query(admin, "SELECT count(*) FROM askpro_customer").success


RUNAWAY = {
    "postgresql": [
        "SELECT pg_sleep(5)",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
    ],
    "sqlite": [
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
        "SELECT count(*) FROM askpro_customer a, askpro_customer b, askpro_customer c, "
        "(WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT x FROM n) d",
    ],
}


@pytest.mark.parametrize("index", [0, 1])
@override_settings(MCP_DATABASE_STATEMENT_TIMEOUT_MS=300)
def test_it_stops_a_runaway_query_at_the_statement_timeout(index, data, admin):
    before = row_counts()
    started = time.monotonic()
    response = query(admin, RUNAWAY[connection.vendor][index])
    elapsed = time.monotonic() - started
    assert not response.success
    assert response.error["code"] == "timeout", response.error
    assert elapsed < 3, f"stopped only after {elapsed:.1f}s"
    assert row_counts() == before
    assert query(admin, "SELECT 1 AS one").data["rows"] == [[1]]


def test_it_refuses_pg_sleep_where_it_does_not_exist_or_stops_it(data, admin):
    with override_settings(MCP_DATABASE_STATEMENT_TIMEOUT_MS=200):
        response = query(admin, "SELECT pg_sleep(3)")
    expected = "timeout" if connection.vendor == "postgresql" else "validation_error"
    assert response.error["code"] == expected, response.error


# --- the second fence: the database itself, with the parser out of the way ---


def _ctx(principal, seconds: float = 5) -> OperationContext:
    request = MCPRequest(service="database", operation="query", params={}, principal=principal)
    return OperationContext(
        request=request, principal=principal, tenant=None, deadline=time.monotonic() + seconds
    )


def _run_fenced(principal, sql: str):
    """Run raw SQL the way database.query does after the parser: read-only, deadline, authorizer."""
    with deadline_transaction(_ctx(principal), read_only=True, cap_ms=2000):
        raw = None
        if connection.vendor == "sqlite":
            raw = connection.connection
            raw.set_authorizer(sqlite_authorizer(allowed_tables(), secret_columns()))
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetchall()
        finally:
            if raw is not None:
                raw.set_authorizer(None)


FENCED_WRITES = [
    "UPDATE askpro_customer SET name = 'hacked'",
    "DELETE FROM askpro_customer",
    "INSERT INTO askpro_plan (code, name, requests_per_minute, max_concurrent_calls) VALUES ('x', 'x', 1, 1)",
    "CREATE TABLE hacked (x integer)",
    "DROP TABLE askpro_customer",
]


@pytest.mark.parametrize("sql", FENCED_WRITES)
def test_it_has_the_database_refuse_writes_even_past_the_parser(sql, data, admin):
    before, tables = row_counts(), table_names()
    with pytest.raises(DatabaseError) as caught:
        _run_fenced(admin, sql)
    assert re.search(r"read-only|not authorized|prohibited", str(caught.value)), caught.value
    assert row_counts() == before
    assert table_names() == tables


def test_it_has_sqlite_refuse_unlisted_tables_and_secret_columns_past_the_parser(data, admin):
    if connection.vendor != "sqlite":
        # PostgreSQL's fence is the read-only transaction; reads of other tables are the
        # parser's job there (covered above). This proves the DB user cannot write either.
        with pytest.raises(DatabaseError):
            _run_fenced(admin, "SELECT nextval('askpro_customer_id_seq')")
        return
    for sql in (
        "SELECT password FROM auth_user",
        "SELECT secret_hash FROM mcp_core_apikey",
        "SELECT calcom_api_key FROM askpro_company",
        "SELECT * FROM askpro_company",
        "SELECT sql FROM sqlite_master",
        "PRAGMA table_info(auth_user)",
        "ATTACH DATABASE ':memory:' AS evil",
    ):
        with pytest.raises(DatabaseError, match="not authorized|prohibited"):
            _run_fenced(admin, sql)
    assert _run_fenced(admin, "SELECT name FROM askpro_company ORDER BY name") == [
        ("Alice's Salon",),
        ("Bob's Practice",),
    ]


def test_it_stops_a_statement_at_the_deadline(data, admin):
    """The progress handler of mcp_core.db (SQLite) or statement_timeout (PostgreSQL)."""
    started = time.monotonic()
    runaway = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    with (
        pytest.raises(DatabaseError, match="interrupted|statement timeout|canceling statement"),
        deadline_transaction(_ctx(admin, seconds=0.3), read_only=True),
        connection.cursor() as cursor,
    ):
        cursor.execute(runaway)
    assert time.monotonic() - started < 3


# --- good queries work and give the right figures ---


def test_it_answers_joins_aggregates_and_ctes_correctly(data, admin):
    alice, bob = data
    response = query(
        admin,
        "SELECT co.slug, count(a.id) AS appointments FROM askpro_company co "
        "JOIN askpro_appointment a ON a.company_id = co.id GROUP BY co.slug ORDER BY co.slug",
    )
    assert response.success, response.error
    assert response.data["columns"] == ["slug", "appointments"]
    assert response.data["rows"] == [["alice-salon", 2], ["bob-practice", 2]]
    assert response.data["truncated"] is False

    response = query(
        admin,
        "WITH failed AS (SELECT company_id FROM askpro_appointment WHERE status = 'failed') "
        "SELECT co.name, (SELECT count(*) FROM failed f WHERE f.company_id = co.id) AS n "
        "FROM askpro_company co WHERE co.slug = 'alice-salon'",
    )
    assert response.success, response.error
    assert response.data["rows"] == [["Alice's Salon", 1]]

    response = query(admin, "SELECT name, slug FROM askpro_company ORDER BY name")
    assert response.data["rows"] == [["Alice's Salon", "alice-salon"], ["Bob's Practice", "bob-practice"]]
    assert SECRET not in str(response.data)


def test_it_caps_rows_and_says_so(data, admin):
    response = query(admin, "SELECT id FROM askpro_appointment ORDER BY id", max_rows=3)
    assert response.data["row_count"] == 3 and response.data["truncated"] is True
    response = query(admin, "SELECT id FROM askpro_appointment ORDER BY id", max_rows=4)
    assert response.data["row_count"] == 4 and response.data["truncated"] is False
    with override_settings(MCP_DATABASE_MAX_ROWS=2):
        response = query(admin, "SELECT id FROM askpro_appointment", max_rows=1000)
    assert response.data["row_count"] == 2 and response.data["truncated"] is True


def test_it_lets_only_platform_admin_keys_query(data, key_factory, client):
    alice, _ = data
    for tenant, scopes in (
        (alice, ["*"]),
        (alice, ["database:admin"]),
        (None, ["database:read"]),
        (None, ["database:write"]),
    ):
        principal = api_key_authenticate(key_factory(tenant=tenant, scopes=scopes))
        response = query(principal, "SELECT 1")
        assert response.error["code"] == "forbidden", (tenant, scopes, response.error)
    raw = key_factory(tenant=None, scopes=["database:*"])
    response = client.post(
        "/api/v1/mcp/call",
        data={"service": "database", "operation": "query", "params": {"sql": "SELECT 1 AS one"}},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["data"]["rows"] == [[1]]


# --- text the parser cannot read is the caller's error, for query and explain alike ---

UNREADABLE = [
    ("unterminated comment", "SELECT 1 /* never closed"),
    ("unterminated string", "SELECT 'never closed"),
    ("unterminated quoted identifier", 'SELECT "never closed'),
    ("unterminated escape string", "SELECT E'\\"),
    ("control characters", "SELECT \x01\x02\x7f FROM \x03"),
    ("deep nesting", "SELECT " + "(" * 200 + "1" + ")" * 200),
]


@pytest.mark.parametrize("operation", ["query", "explain"])
@pytest.mark.parametrize(("label", "sql"), UNREADABLE, ids=[label for label, _ in UNREADABLE])
def test_it_answers_text_the_parser_cannot_read_with_a_validation_error(label, sql, operation, admin):
    response = call_operation("database", operation, {"sql": sql}, principal=admin)
    assert not response.success
    assert response.error["code"] == "validation_error", response.error
    assert response.error["details"] == {"field": "sql", "problem": "invalid"}, response.error
    assert response.error["message"].startswith("sql: "), response.error


# --- the byte cap: answers are bounded in bytes as well as rows, while fetching ---


def _text(n: int, char: str = "x") -> str:
    """SQL for a text of n characters, built by the database itself."""
    if connection.vendor == "postgresql":
        return f"repeat('{char}', {n})"
    return f"printf('%.*c', {n}, '{char}')"


def _rows_json_bytes(data) -> int:
    return len(json.dumps(data["rows"], ensure_ascii=False, separators=(",", ":")).encode())


@override_settings(MCP_DATABASE_MAX_BYTES=64 * 1024)
def test_it_cuts_a_value_longer_than_the_byte_cap_and_says_so(admin):
    response = query(admin, f"SELECT 'a' AS small, {_text(1_000_000)} AS big, 7 AS after")
    assert response.success, response.error
    data = response.data
    assert data["columns"] == ["small", "big", "after"]
    assert data["truncated"] is True and data["truncated_by"] == "max_bytes"
    assert data["max_bytes"] == 64 * 1024 and data["max_rows"] == 1000
    [row] = data["rows"]
    assert row[0] == "a"
    assert set(row[1]) == {"x"} and 60 * 1024 < len(row[1]) < 64 * 1024
    assert row[2] is None  # left out after the cut value, and said so:
    assert data["cut_values"] == [[0, 1], [0, 2]]
    assert _rows_json_bytes(data) <= 64 * 1024


# One value of 100 MB, built by the database. (SQLite has no repeat(); printf alone gives NULL
# rather than an error past SQLite's length limit, replace() refuses to grow past it.)
HUNDRED_MB = {
    "postgresql": "SELECT repeat('x', 100000000) AS big",
    "sqlite": f"SELECT replace(printf('%.*c', 2000000, 'x'), 'x', '{'x' * 50}') AS big",
}


# Building 100 MB takes PostgreSQL a second or two on a busy machine: room for that, so that
# the test is about the cap, not the machine's load.
@override_settings(MCP_DATABASE_STATEMENT_TIMEOUT_MS=12_000)
def test_it_cuts_a_hundred_megabyte_value_quickly(admin):
    """The case from the issue: one value of 100 MB. PostgreSQL sends only the first bytes;
    SQLite (running in this process) refuses to build a value that long at all."""
    response = query(admin, HUNDRED_MB[connection.vendor])
    # Success, not a timeout: PostgreSQL sent 1 MB, SQLite stopped at its length limit.
    assert response.success, response.error
    data = response.data
    assert data["truncated"] is True and data["truncated_by"] == "max_bytes"
    assert data["max_bytes"] == settings.MCP_DATABASE_MAX_BYTES
    assert _rows_json_bytes(data) <= settings.MCP_DATABASE_MAX_BYTES
    if connection.vendor == "postgresql":
        assert data["cut_values"] == [[0, 0]]
        assert len(data["rows"][0][0]) > settings.MCP_DATABASE_MAX_BYTES - 100
    else:
        assert data["rows"] == [] and "SQLite does not build" in data["note"], data["note"]
    assert query(admin, "SELECT 1 AS one").data["rows"] == [[1]]


def test_it_stops_adding_rows_at_the_byte_cap(admin):
    many = (
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 5000) "
        f"SELECT x, {_text(1000, 'y')} AS pad FROM n ORDER BY x"
    )
    response = query(admin, many, max_rows=5000, max_bytes=20_000)
    data = response.data
    assert response.success and data["truncated_by"] == "max_bytes", response.error
    assert data["max_bytes"] == 20_000
    # Whole rows in order, then the one that crossed the cap, cut short.
    assert [row[0] for row in data["rows"]] == list(range(1, data["row_count"] + 1))
    assert all(row[1] == "y" * 1000 for row in data["rows"][:-1])
    assert 15 <= data["row_count"] <= 20
    last = data["row_count"] - 1
    assert data["cut_values"] == [[last, 1]] and len(data["rows"][-1][1]) < 1000
    assert _rows_json_bytes(data) <= 20_000

    # The setting is the upper bound of what a caller may ask for.
    with override_settings(MCP_DATABASE_MAX_BYTES=4096):
        data = query(admin, many, max_rows=5000, max_bytes=100_000).data
    assert data["max_bytes"] == 4096 and data["row_count"] == 5 and _rows_json_bytes(data) <= 4096

    # The row cap still applies on its own, and a query that fits says nothing was cut.
    data = query(admin, many, max_rows=3).data
    assert data["truncated_by"] == "max_rows" and data["row_count"] == 3 and data["cut_values"] == []
    data = query(admin, "SELECT 1 AS one").data
    assert data["truncated"] is False and data["truncated_by"] is None and data["cut_values"] == []


@override_settings(MCP_DATABASE_MAX_BYTES=1024)
def test_it_cuts_escaped_and_multibyte_text_within_the_cap(admin):
    for char, sql_char in (('"', '"'), ("\n", "\n"), ("é", "é"), ("€", "€")):
        literal = "E'\\n'" if char == "\n" and connection.vendor == "postgresql" else f"'{sql_char}'"
        if connection.vendor == "postgresql":
            sql = f"SELECT repeat({literal}, 5000) AS t"
        else:
            literal = "char(10)" if char == "\n" else literal
            sql = f"SELECT replace(printf('%.*c', 5000, 'z'), 'z', {literal}) AS t"
        data = query(admin, sql).data
        assert data["truncated_by"] == "max_bytes", (char, data)
        value = data["rows"][0][0]
        assert value and set(value) == {char}, (char, value[:20])
        assert _rows_json_bytes(data) <= 1024, char


def test_it_gives_exact_values_and_names_below_the_cap(data, admin):
    response = query(
        admin,
        "/* leading comment */ SELECT 1 AS a, 1 AS a, NULL AS n, 'he said \"hi\" é€' AS t, 2.5 AS f, "
        "-3 AS neg -- trailing comment",
    )
    assert response.success, response.error
    assert response.data["columns"] == ["a", "a", "n", "t", "f", "neg"]
    assert response.data["rows"] == [[1, 1, None, 'he said "hi" é€', 2.5, -3]]
    response = query(
        admin, "WITH x AS (SELECT slug FROM askpro_company) SELECT slug FROM x ORDER BY slug DESC"
    )
    assert response.data["rows"] == [["bob-practice"], ["alice-salon"]]


@pytest.mark.slow
def test_it_keeps_the_worker_memory_bounded_on_a_huge_value(django_db_setup):
    """A real process (the way a worker runs the pipeline) answers the 100 MB query; its peak
    resident memory grows by far less than the value's size."""
    settings_dict = connection.settings_dict
    if connection.vendor == "postgresql":
        auth = settings_dict["USER"] + (
            f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
        )
        url = f"postgres://{auth}@{settings_dict['HOST'] or '127.0.0.1'}:{settings_dict['PORT'] or 5432}/{settings_dict['NAME']}"
        queries = [
            HUNDRED_MB["postgresql"],
            "SELECT g, repeat('x', 20000000) AS big FROM generate_series(1, 50) g",
        ]
    else:
        url = f"sqlite:///{settings_dict['NAME']}"
        queries = [
            HUNDRED_MB["sqlite"],
            f"WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 50) "
            f"SELECT x, {_text(3_000_000)} AS big FROM n",
        ]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "askpro.settings_test",
        "DATABASE_URL": url,
        "DB_POOL": "0",
        "MCP_AUDIT_FLUSH_MS": "0",
        "MCP_DATABASE_STATEMENT_TIMEOUT_MS": "12000",
    }
    child = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("memory_probe.py")), *queries],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    results = json.loads(child.stdout.strip().splitlines()[-1])
    assert len(results) == len(queries)
    for result in results:
        assert result["success"], result
        assert result["truncated_by"] == "max_bytes", result
        assert result["rows_json_bytes"] <= settings.MCP_DATABASE_MAX_BYTES, result
        # The value is 100 MB (or 50 x 20 MB); the process grows by a few MB at most.
        assert result["peak_growth_mb"] < 50, result


@pytest.fixture(scope="module", autouse=True)
def _sqlite_child(request, tmp_path_factory):
    """Start the SQLite run of this module as soon as the module starts, so that it runs
    alongside the PostgreSQL tests; test_it_holds_on_sqlite_too collects its verdict."""
    wanted = connection.vendor != "sqlite" and any(
        item.name == "test_it_holds_on_sqlite_too" for item in request.session.items
    )
    if not wanted:
        yield None
        return
    workdir = tmp_path_factory.mktemp("sqlite-run")
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{workdir / 'askpro.sqlite3'}",
        "TEST_DATABASE_NAME": str(workdir / "test.sqlite3"),
        "ASKPRO_EXPECT_SQLITE": "1",
        # Its own cache namespace: rate-limit and breaker state must not mix with this run's.
        "CACHE_KEY_PREFIX": f"{settings.CACHES['default'].get('KEY_PREFIX', 'askpro')}-sqlite",
    }
    log = (workdir / "pytest.log").open("w+")
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider", "-k", "not sqlite_too"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield child, log
    if child.poll() is None:
        child.kill()
        child.wait()
    log.close()


def test_it_holds_on_sqlite_too(_sqlite_child):
    """This very module, run on a real SQLite database in a child process."""
    if connection.vendor == "sqlite":
        pytest.fail("the SQLite run must deselect this test")
    child, log = _sqlite_child
    child.wait(timeout=300)
    log.seek(0)
    output = log.read()
    assert child.returncode == 0, output[-5000:]
    summary = output.strip().splitlines()[-1]
    assert "failed" not in summary and "error" not in summary, summary
    passed = int(re.search(r"(\d+) passed", summary).group(1))
    assert passed >= len(REFUSED) + 10, summary
