import pytest
from django.db import connection
from django.test import override_settings

from askpro.models import Call
from mcp_core.contracts import Principal
from mcp_core.pipeline import call_operation
from mcp_servers.database import querylog
from mcp_servers.database.analysis import predicate_columns, suggest_indexes

ADMIN = Principal(kind="api_key", name="key:ops", scopes=frozenset({"database:admin"}))


def call(operation, **params):
    return call_operation("database", operation, params, principal=ADMIN)


@pytest.mark.django_db
def test_it_explains_a_select_and_names_sequential_scans(alice):
    response = call("explain", sql="SELECT id FROM askpro_call WHERE summary = 'booked'")
    assert response.success, response.error
    assert response.data["total_cost"] is not None
    assert [scan["table"] for scan in response.data["seq_scans"]] == ["askpro_call"]


@pytest.mark.django_db
def test_it_runs_explain_analyze_read_only_with_actual_timings(alice):
    before = Call.objects.count()
    response = call("explain", sql="SELECT count(*) FROM askpro_call", analyze=True)
    assert response.success, response.error
    assert response.data["actual_ms"] is not None
    assert Call.objects.count() == before


@pytest.mark.django_db
def test_it_refuses_to_explain_a_write_or_an_unlisted_table(alice):
    assert call("explain", sql="DELETE FROM askpro_call").error["details"]["field"] == "sql"
    assert call("explain", sql="EXPLAIN ANALYZE DELETE FROM askpro_call").error["code"] == "validation_error"
    assert call("explain", sql="SELECT * FROM mcp_core_apikey").error["code"] == "validation_error"
    assert Call.objects.count() == 1


def test_it_reads_which_columns_a_query_filters_on():
    sql = (
        'SELECT "c"."id" FROM "askpro_call" "c" JOIN "askpro_branch" b ON b.id = c.branch_id '
        "WHERE c.from_number = %s AND c.started_at >= %s AND b.city IN (?…) ORDER BY c.ended_at"
    )
    found = predicate_columns(sql)
    assert found["askpro_call"] == {
        "equality": ["from_number"],
        "range": ["started_at"],
        "order": ["ended_at"],
    }
    assert found["askpro_branch"]["equality"] == ["city"]


@pytest.mark.django_db
def test_it_suggests_an_index_only_where_none_leads_with_the_column():
    unindexed = suggest_indexes("SELECT id FROM askpro_call WHERE summary = %s")
    assert [(s.table, s.columns) for s in unindexed] == [("askpro_call", ["summary"])]
    assert unindexed[0].statement.startswith("CREATE INDEX")
    assert "rows_estimate" in unindexed[0].evidence or "rows" in unindexed[0].evidence
    # company_id leads an existing index (call_company_started): nothing to suggest
    assert suggest_indexes("SELECT id FROM askpro_call WHERE company_id = %s") == []


@pytest.mark.django_db
def test_it_reports_captured_slow_shapes_with_suggestions_and_never_applies_them(alice):
    querylog.clear()
    with override_settings(MCP_SLOW_QUERY_MS=0):
        for text in ("a", "b", "c"):
            list(Call.objects.filter(summary=text).values_list("id", flat=True))
        response = call("optimize_queries", limit=50)
    assert response.success, response.error
    assert response.data["source"].startswith("captured timings")
    shapes = [q for q in response.data["queries"] if '"askpro_call"."summary" = ?' in q["query"]]
    assert shapes and shapes[0]["calls"] == 3
    assert shapes[0]["suggestions"][0]["columns"] == ["summary"]
    with connection.cursor() as cursor:
        indexes = connection.introspection.get_constraints(cursor, "askpro_call")
    assert not any(c["columns"] == ["summary"] for c in indexes.values())
    querylog.clear()


def test_it_ignores_literal_values_and_in_list_lengths_in_shapes():
    a = querylog.fingerprint("SELECT * FROM t WHERE a = 1 AND b IN (%s, %s) AND c = 'x'")
    b = querylog.fingerprint("SELECT * FROM t WHERE a = 22 AND b IN (%s, %s, %s) AND c = 'yy'")
    assert a == b
