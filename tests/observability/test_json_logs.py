"""LOG_FORMAT=json: a process configured by the real settings writes one JSON object per line
with the call's request id, tenant, service and operation; secrets sent in headers, params,
URLs and tenant credentials (canaries) never appear in any line."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys

import pytest

from mcp_core.logs import FIELDS
from tests.mcp.conftest import ROOT, child_env, free_port

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SCRIPT = """
import json, sys, django
django.setup()
from django.test import Client
key, canary = sys.argv[1], sys.argv[2]
client = Client(headers={"Authorization": "Bearer " + key})
def call(service, operation, params, **headers):
    body = json.dumps({"service": service, "operation": operation, "params": params})
    return client.post("/api/v1/mcp/call", body, content_type="application/json", headers=headers).status_code
print(call("database", "get_call_stats", {"days": 7}, X_Request_ID="req-json-1"))
print(call("database", "get_call_stats", {"days": 7, "password": canary}))
print(call("calcom", "get_event_types", {}, X_Request_ID="req-json-2"))
# A key pasted into a URL: Django logs the path of the 404.
print(client.get("/api/v1/mcp/" + key + "/nothing/here").status_code)
print(Client(headers={"Authorization": "Bearer " + canary}).get("/api/v1/mcp/services").status_code)
"""


def test_it_writes_json_lines_with_context_and_no_secret(alice, alice_key):
    param_canary = "canary-param-" + secrets.token_hex(8)
    credential_canary = "cal_live_canary" + secrets.token_hex(8)
    alice.calcom_api_key = credential_canary
    alice.save(update_fields=["calcom_api_key"])
    env = child_env(
        LOG_FORMAT="json",
        LOG_LEVEL="DEBUG",
        ALLOWED_HOSTS="testserver",
        MCP_AUDIT_FLUSH_MS="0",
        CALCOM_BASE_URL=f"http://127.0.0.1:{free_port()}",  # nothing listens: the call fails and logs
    )
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, alice_key, param_canary],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["200", "400", "502", "404", "401"]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    for entry in entries:
        assert {"timestamp", "level", "logger", "message", *FIELDS} <= set(entry)
    for secret in (alice_key, param_canary, credential_canary, alice_key.split("_", 2)[2]):
        assert not [line for line in lines if secret in line], secret

    upstream = [e for e in entries if e["logger"] == "mcp_core.http" and "calcom" in e["message"]]
    assert upstream, "the failing Cal.com call logs its attempts"
    assert {(e["request_id"], e["tenant"], e["service"], e["operation"]) for e in upstream} == {
        ("req-json-2", "alice-salon", "calcom", "get_event_types")
    }
    not_found = [
        e for e in entries if e["logger"] == "django.request" and e["message"].startswith("Not Found")
    ]
    assert [e["message"] for e in not_found] == ["Not Found: /api/v1/mcp/[redacted]"]
    assert all(e["request_id"] for e in not_found + upstream)
