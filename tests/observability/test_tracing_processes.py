"""OpenTelemetry traces across real processes, switched on the way a deployment does it (the
OTEL_* variables, read at start-up), exported by the real OTLP/HTTP exporter to a receiver in the
test (otlp_receiver.py):

- a webhook POST (traced in this process) and the Celery task a real worker on the Redis broker
  runs for it are one trace: the task's span is the child of the publishing span;
- a process configured only by its environment installs the global provider, and the trace id of
  its route span is the one in the audit row and on every log line of the call, in JSON and plain
  text."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from django.test import Client
from opentelemetry.trace import SpanKind

from mcp_core.models import AuditEntry
from mcp_servers.queue.tests.celery_worker import celery_worker_factory, wait_for  # noqa: F401 - fixture
from mcp_servers.webhooks.models import WebhookEvent
from mcp_servers.webhooks.tenants import forget_tenant_secrets
from mcp_servers.webhooks.tests.conftest import RETELL_KEY, post, retell_body, signed
from tests.mcp.conftest import ROOT, child_env, free_port

from .otlp_receiver import OtlpReceiver
from .test_tracing import spans  # noqa: F401 - fixture

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
SPAN_KIND_CONSUMER = 5


@pytest.fixture
def receiver():
    server = OtlpReceiver().start()
    yield server
    server.stop()


def test_it_carries_a_webhooks_trace_into_its_celery_task(
    spans,  # noqa: F811
    celery_worker_factory,  # noqa: F811
    receiver,
    settings,
    alice,
):
    settings.RETELL_API_KEY = RETELL_KEY
    forget_tenant_secrets()
    celery_worker_factory(
        RETELL_API_KEY=RETELL_KEY,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_BSP_SCHEDULE_DELAY="100",
        OTEL_SERVICE_NAME="askpro-worker-test",
    ).start()
    call = {
        "call_id": "call_traced",
        "call_type": "phone_call",
        "agent_id": "agent_1",
        "agent_version": 1,
        "call_status": "ongoing",
        "direction": "inbound",
        "from_number": "+4915550001",
        "to_number": "+4930111111",
        "start_timestamp": int(time.time() * 1000) - 60_000,
    }
    body = retell_body({"event": "call_started", "call": call})
    response = post(Client(), "retell", body, signed("retell", body))
    assert response.status_code == 202, response.content

    finished = spans.get_finished_spans()
    (server,) = [s for s in finished if s.kind is SpanKind.SERVER]
    (publish,) = [s for s in finished if s.kind is SpanKind.PRODUCER]
    assert publish.name == "apply_async/webhooks.process_event"
    assert publish.context.trace_id == server.context.trace_id
    trace_id = f"{server.context.trace_id:032x}"

    (run,) = receiver.wait_for(lambda s: s.kind == SPAN_KIND_CONSUMER and s.trace_id == trace_id)
    assert run.name == "run/webhooks.process_event"
    assert run.parent_span_id == f"{publish.context.span_id:016x}"
    assert run.service_name == "askpro-worker-test"
    # The worker's SQL statements are in the same trace, under the task's span.
    receiver.wait_for(lambda s: s.trace_id == trace_id and s.parent_span_id == run.span_id)
    wait_for(lambda: WebhookEvent.objects.filter(status="processed").exists(), timeout=30)


SCRIPT = """
import json, sys, django
django.setup()
from django.test import Client
from opentelemetry import trace
from mcp_core.models import AuditEntry
client = Client(headers={"Authorization": "Bearer " + sys.argv[1]})
body = json.dumps({"service": "calcom", "operation": "get_event_types", "params": {}})
status = client.post("/api/v1/mcp/call", body, content_type="application/json",
                     headers={"X-Request-ID": "req-traced"}).status_code
print(json.dumps({"status": status, "provider": type(trace.get_tracer_provider()).__module__,
                  "audit": AuditEntry.objects.get(request_id="req-traced").trace_id}))
"""


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_it_is_switched_on_by_the_environment_and_names_the_trace_in_audit_and_logs(
    receiver, alice, alice_key, log_format
):
    alice.calcom_api_key = "cal_live_tenant_key"
    alice.save(update_fields=["calcom_api_key"])
    env = child_env(
        LOG_FORMAT=log_format,
        LOG_LEVEL="INFO",
        ALLOWED_HOSTS="testserver",
        MCP_AUDIT_FLUSH_MS="0",
        CALCOM_BASE_URL=f"http://127.0.0.1:{free_port()}",  # nothing listens: the call fails and logs
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
    )
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, alice_key],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["status"] == 502
    assert answer["provider"] == "opentelemetry.sdk.trace"  # installed as the global provider

    (route,) = receiver.wait_for(lambda s: s.attributes.get("askpro.request_id") == "req-traced")
    assert route.name == "route calcom.get_event_types"
    assert route.attributes["askpro.tenant"] == "alice-salon"
    assert route.attributes["askpro.outcome"] == "service_failure"
    assert route.service_name == "askpro"  # the project's default OTEL_SERVICE_NAME
    assert answer["audit"] == route.trace_id
    assert AuditEntry.objects.get(request_id="req-traced").trace_id == route.trace_id

    upstream = [line for line in result.stderr.splitlines() if "upstream calcom" in line]
    assert upstream, result.stderr[-2000:]
    if log_format == "json":
        assert {json.loads(line)["trace_id"] for line in upstream} == {route.trace_id}
    else:
        assert all(line.endswith(f" trace_id={route.trace_id}") for line in upstream)
