"""OpenTelemetry traces in this process, exported to the SDK's in-memory exporter: one trace from
the /mcp request through route()'s span to the upstream request and the SQL statements, the
route span's attributes for every outcome class, the trace id in the audit row (durable and
batched writes) and in the log lines (JSON and plain), and tracing off by default.

Tracing is switched on per test with `tracing.configure(..., set_global=False)`: OpenTelemetry's
process-wide provider can be set only once, so these tests leave it alone; the processes started
by test_tracing_processes.py run the real start-up path (settings -> global provider)."""

from __future__ import annotations

import io
import json
import logging
import secrets

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from mcp_core import tracing
from mcp_core.api_keys import api_key_authenticate
from mcp_core.logs import ContextFilter, JsonFormatter, PlainFormatter
from mcp_core.models import AuditEntry
from mcp_core.pipeline import call_operation
from mcp_core.recorder import flush_recorder
from mcp_servers.calcom.sandbox import DEMO_API_KEY, CalcomSandbox
from tests.mcp.conftest import free_port
from tests.mcp.helpers import post

pytestmark = pytest.mark.django_db(transaction=True)


def _fresh_database_connections() -> None:
    """Connections (and pooled ones) opened before the instrumentation are not traced; the
    next query opens a new one through the (un)instrumented psycopg.connect."""
    for conn in connections.all():
        conn.close()
        if getattr(conn, "pool", None) is not None:
            conn.close_pool()


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracing.configure([exporter], batch=False, set_global=False)
    _fresh_database_connections()
    try:
        yield exporter
    finally:
        tracing.shutdown()
        _fresh_database_connections()


@pytest.fixture(scope="module")
def sandbox():
    server = CalcomSandbox().start()
    yield server
    server.stop()


@pytest.fixture
def calcom(sandbox, settings):
    sandbox.reset()
    sandbox.add_event_type(DEMO_API_KEY, title="Consultation", slug="consult", length=30, event_type_id=42)
    settings.CALCOM_BASE_URL = sandbox.url
    settings.CALCOM_API_KEY = DEMO_API_KEY
    return sandbox


def _hex(trace_id: int) -> str:
    return f"{trace_id:032x}"


def _route_spans(exporter):
    return [s for s in exporter.get_finished_spans() if s.instrumentation_scope.name == tracing.TRACER_NAME]


def _children(exporter, parent):
    return [
        s for s in exporter.get_finished_spans() if s.parent and s.parent.span_id == parent.context.span_id
    ]


def test_it_follows_a_tools_call_from_the_request_through_the_route_to_the_upstream(
    spans, calcom, alice, alice_key
):
    result = post(
        Client(), "tools/call", {"name": "calcom_get_event_types", "arguments": {}}, key=alice_key
    ).json()["result"]
    assert not result.get("isError"), result

    finished = spans.get_finished_spans()
    (server,) = [s for s in finished if s.kind is SpanKind.SERVER]
    assert server.parent is None and server.attributes["http.method"] == "POST"
    (route,) = _route_spans(spans)
    assert route.name == "route calcom.get_event_types"
    assert route.kind is SpanKind.INTERNAL
    assert route.parent.span_id == server.context.span_id  # the view's call is inside the request
    assert dict(route.attributes) == {
        "askpro.service": "calcom",
        "askpro.operation": "get_event_types",
        "askpro.transport": "mcp",
        "askpro.request_id": route.attributes["askpro.request_id"],
        "askpro.tenant": "alice-salon",
        "askpro.outcome": "success",
    }
    assert route.status.status_code is StatusCode.UNSET

    under_route = _children(spans, route)
    upstream = [s for s in under_route if s.instrumentation_scope.name.endswith("requests")]
    assert len(upstream) == 1, [s.name for s in under_route]
    (request_span,) = upstream
    assert request_span.kind is SpanKind.CLIENT
    assert request_span.attributes["http.url"].startswith(calcom.url + "/v2/event-types")
    assert request_span.attributes["http.status_code"] == 200
    sql = [s for s in under_route if s.instrumentation_scope.name.endswith("psycopg")]
    assert sql, "the tenant lookup runs inside the route span"
    assert {s.attributes["db.system"] for s in sql} == {"postgresql"}

    # One trace for all of it, and the audit row names it (a read over /mcp: the batched write).
    assert {s.context.trace_id for s in finished} == {server.context.trace_id}
    flush_recorder()
    entry = AuditEntry.objects.get(request_id=route.attributes["askpro.request_id"])
    assert entry.trace_id == _hex(route.context.trace_id)


def test_it_joins_the_trace_a_client_started(spans, alice, alice_key):
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    response = post(
        Client(),
        "tools/call",
        {"name": "database_get_call_stats", "arguments": {"days": 7}},
        key=alice_key,
        headers={"traceparent": f"00-{trace_id}-{parent_id}-01"},
    )
    assert response.status_code == 200
    (route,) = _route_spans(spans)
    assert _hex(route.context.trace_id) == trace_id
    (server,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert f"{server.parent.span_id:016x}" == parent_id and server.parent.is_remote


@pytest.mark.parametrize("flush_ms", [0, 60_000], ids=["durable", "batched"])
def test_it_stores_the_span_trace_id_in_the_audit_row(spans, settings, alice, alice_key, flush_ms):
    settings.MCP_AUDIT_FLUSH_MS = flush_ms
    principal = api_key_authenticate(alice_key)
    response = call_operation("database", "get_call_stats", {"days": 7}, principal=principal, transport="mcp")
    assert response.success
    flush_recorder()
    (route,) = _route_spans(spans)
    entry = AuditEntry.objects.get(request_id=response.metadata["request_id"])
    assert entry.trace_id == _hex(route.context.trace_id)
    assert len(entry.trace_id) == 32


def test_it_names_the_outcome_class_and_error_code_on_the_route_span(spans, settings, alice, alice_key):
    settings.CALCOM_BASE_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings.CALCOM_API_KEY = DEMO_API_KEY
    principal = api_key_authenticate(alice_key)
    calls = [
        ("database", "get_call_stats", {"days": "many"}),  # validation_error: the caller's mistake
        ("calcom", "get_event_types", {}),  # upstream_error: the service failed
        ("nosuch", "thing", {}),  # not_found, for a name the registry does not know
    ]
    for service, operation, params in calls:
        assert not call_operation(service, operation, params, principal=principal).success
    by_name = {s.name: s for s in _route_spans(spans)}
    assert set(by_name) == {"route database.get_call_stats", "route calcom.get_event_types", "route _unknown"}

    refused = by_name["route database.get_call_stats"]
    assert refused.attributes["askpro.outcome"] == "caller_error"
    assert refused.attributes["askpro.error_code"] == "validation_error"
    assert refused.status.status_code is StatusCode.UNSET  # not the service's fault

    failed = by_name["route calcom.get_event_types"]
    assert failed.attributes["askpro.outcome"] == "service_failure"
    assert failed.attributes["askpro.error_code"] == "upstream_error"
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "upstream_error"
    attempts = [
        s for s in _children(spans, failed) if s.kind is SpanKind.CLIENT and "http.url" in s.attributes
    ]
    assert attempts and all(s.status.status_code is StatusCode.ERROR for s in attempts)

    unknown = by_name["route _unknown"]
    assert unknown.attributes["askpro.service"] == "nosuch"
    assert unknown.attributes["askpro.outcome"] == "caller_error"
    assert "askpro.tenant" not in unknown.attributes
    for span in by_name.values():
        entry = AuditEntry.objects.get(request_id=span.attributes["askpro.request_id"])
        assert entry.trace_id == _hex(span.context.trace_id)


def test_it_writes_the_trace_id_on_json_and_plain_log_lines(spans, settings, alice, alice_key):
    settings.CALCOM_BASE_URL = f"http://127.0.0.1:{free_port()}"  # the client logs its failed attempts
    settings.CALCOM_API_KEY = DEMO_API_KEY
    lines = {}
    handlers = {}
    for name, formatter in (("json", JsonFormatter()), ("plain", PlainFormatter())):
        lines[name] = io.StringIO()
        handler = logging.StreamHandler(lines[name])
        handler.setFormatter(formatter)
        handler.addFilter(ContextFilter())
        handlers[name] = handler
    upstream_logger = logging.getLogger("mcp_core.http")
    for handler in handlers.values():
        upstream_logger.addHandler(handler)
    try:
        call_operation("calcom", "get_event_types", {}, principal=api_key_authenticate(alice_key))
        logging.getLogger("mcp_core.http").warning("outside any call")
    finally:
        for handler in handlers.values():
            upstream_logger.removeHandler(handler)
    (route,) = _route_spans(spans)
    trace_id = _hex(route.context.trace_id)

    entries = [json.loads(line) for line in lines["json"].getvalue().splitlines()]
    inside, outside = entries[:-1], entries[-1]
    assert inside and {e["trace_id"] for e in inside} == {trace_id}
    assert outside["trace_id"] is None and outside["message"] == "outside any call"

    plain = lines["plain"].getvalue().splitlines()
    assert plain[:-1] and all(line.endswith(f" trace_id={trace_id}") for line in plain[:-1])
    assert plain[-1].endswith("outside any call")


def test_it_keeps_keys_and_params_out_of_every_span(spans, alice, alice_key):
    canary = "canary-" + secrets.token_hex(8)
    post(
        Client(),
        "tools/call",
        {"name": "database_get_call_stats", "arguments": {"days": 7, "password": canary}},
        key=alice_key,
    )
    post(Client(), "tools/list", key=canary)
    dumped = "".join(s.to_json() for s in spans.get_finished_spans())
    assert _route_spans(spans)
    for secret in (alice_key, alice_key.split("_", 2)[2], canary):
        assert secret not in dumped


def test_it_starts_no_trace_for_a_query_or_request_outside_any_span(spans, alice):
    from askpro.models import Company

    assert Company.objects.filter(pk=alice.pk).exists()
    import requests

    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{free_port()}/", timeout=1)
    assert spans.get_finished_spans() == ()
    # The same query inside a span is traced.
    with tracing.tracer.start_as_current_span("a task"):
        assert Company.objects.filter(pk=alice.pk).exists()
    assert {s.name for s in spans.get_finished_spans()} >= {"a task", "SELECT"}


def test_it_is_off_by_default_with_no_provider_and_no_instrumentation(alice, alice_key):
    """The test process is configured like a deployment without OTEL_* variables."""
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    assert settings.OTEL_TRACES_EXPORTER == ["none"] and settings.OTEL_TRACING is False
    assert tracing.provider() is None and tracing.tracer is None
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    for instrumentor in (DjangoInstrumentor, CeleryInstrumentor, PsycopgInstrumentor, RequestsInstrumentor):
        assert not instrumentor().is_instrumented_by_opentelemetry, instrumentor.__name__
    assert not any("opentelemetry" in path for path in settings.MIDDLEWARE)

    response = post(
        Client(), "tools/call", {"name": "database_get_call_stats", "arguments": {"days": 7}}, key=alice_key
    )
    assert response.status_code == 200
    assert not trace.get_current_span().get_span_context().is_valid
    flush_recorder()
    assert AuditEntry.objects.get().trace_id == ""


def test_it_switches_off_cleanly(alice, alice_key):
    exporter = InMemorySpanExporter()
    tracing.configure([exporter], batch=False, set_global=False)
    tracing.shutdown()
    assert tracing.tracer is None and tracing.provider() is None
    assert not any("opentelemetry" in path for path in settings.MIDDLEWARE)
    call_operation("database", "get_call_stats", {"days": 7}, principal=api_key_authenticate(alice_key))
    assert exporter.get_finished_spans() == ()


def test_it_shows_the_trace_id_in_the_audit_admin_read_only_and_finds_rows_by_it(spans, alice, alice_key):
    from django.contrib.auth import get_user_model
    from django.urls import reverse

    response = call_operation(
        "database", "get_call_stats", {"days": 7}, principal=api_key_authenticate(alice_key)
    )
    entry = AuditEntry.objects.get(request_id=response.metadata["request_id"])
    call_operation("database", "get_call_stats", {"days": 7}, principal=api_key_authenticate(alice_key))
    assert AuditEntry.objects.exclude(trace_id=entry.trace_id).exists()  # another trace, another row

    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(user)
    page = client.get(reverse("admin:mcp_core_auditentry_change", args=[entry.pk])).content.decode()
    assert entry.trace_id in page
    assert 'name="trace_id"' not in page  # shown, not editable
    found = client.get(reverse("admin:mcp_core_auditentry_changelist"), {"q": entry.trace_id})
    assert found.status_code == 200
    assert list(found.context["cl"].result_list) == [entry]
