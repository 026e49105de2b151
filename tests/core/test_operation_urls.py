"""POST /api/v1/mcp/<service>/<operation>: the /call endpoint with service and operation in
the path, through the same pipeline (auth, tenant binding, validation, audit)."""

from __future__ import annotations

import json

import pytest

from mcp_core.models import AuditEntry


def post(client, url, body=None, *, key=None, raw=None, content_type="application/json", **extra):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    data = raw if raw is not None else (json.dumps(body) if body is not None else "")
    return client.post(url, data=data, content_type=content_type, **headers, **extra)


STATS = "/api/v1/mcp/database/get_tenant_stats"
CALL_STATS = "/api/v1/mcp/database/get_call_stats"


def test_it_calls_an_operation_at_its_own_url_as_call_does(client, alice, alice_key):
    response = post(client, CALL_STATS, {"days": 30}, key=alice_key, HTTP_X_REQUEST_ID="req-own-url-1")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["success"] is True and body["error"] is None
    assert body["metadata"]["service"] == "database" and body["metadata"]["operation"] == "get_call_stats"
    assert body["metadata"]["request_id"] == "req-own-url-1"
    assert body["metadata"]["tenant_id"] == alice.pk
    # The same call through /call gives the same data.
    via_call = post(
        client,
        "/api/v1/mcp/call",
        {"service": "database", "operation": "get_call_stats", "params": {"days": 30}},
        key=alice_key,
    ).json()
    assert via_call["data"] == body["data"]
    entry = AuditEntry.objects.filter(request_id="req-own-url-1").get()
    assert (entry.service, entry.operation, entry.error_code, entry.tenant_id, entry.transport) == (
        "database",
        "get_call_stats",
        "",
        alice.pk,
        "api",
    )
    # No body at all is no params: every param of get_tenant_stats has a default.
    response = post(client, STATS, key=alice_key)
    assert response.status_code == 200 and response.json()["data"]["tenant"] == "alice-salon"


def test_it_refuses_a_call_without_a_valid_key_and_audits_it(client, db):
    for key in (None, "askpro_not-a-real-key"):
        response = post(client, STATS, {}, key=key)
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert response.json()["error"]["code"] == "unauthorized"
    assert AuditEntry.objects.filter(operation="get_tenant_stats", error_code="unauthorized").count() == 2


def test_it_binds_the_tenant_as_call_does(client, alice, bob, alice_key, platform_key, key_factory):
    # A tenant key acts for its own tenant; naming another one is forbidden, naming its own is fine.
    response = post(client, f"{STATS}?tenant=bob-practice", {}, key=alice_key)
    assert response.status_code == 403 and response.json()["error"]["details"]["field"] == "tenant"
    assert post(client, f"{STATS}?tenant=alice-salon", {}, key=alice_key).json()["data"]["tenant"] == (
        "alice-salon"
    )
    # A platform key must name the tenant, by slug or id, and only an existing one.
    response = post(client, STATS, {}, key=platform_key)
    assert response.status_code == 400 and response.json()["error"]["details"]["field"] == "tenant"
    assert post(client, f"{STATS}?tenant=bob-practice", {}, key=platform_key).json()["data"]["tenant"] == (
        "bob-practice"
    )
    assert post(client, f"{STATS}?tenant={bob.pk}", {}, key=platform_key).json()["data"]["tenant"] == (
        "bob-practice"
    )
    response = post(client, f"{STATS}?tenant=nobody", {}, key=platform_key)
    assert response.status_code == 404 and response.json()["error"]["details"]["field"] == "tenant"
    # Scopes and platform-only operations hold as well.
    reader = key_factory(tenant=alice, scopes=["database:read"])
    response = post(client, "/api/v1/mcp/database/query", {"sql": "SELECT 1"}, key=reader)
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    response = post(client, "/api/v1/mcp/database/query", {"sql": "SELECT 1 AS one"}, key=platform_key)
    assert response.status_code == 200 and response.json()["data"]["rows"] == [[1]]


@pytest.mark.parametrize(
    ("label", "url", "kwargs", "status", "field"),
    [
        ("params not an object", CALL_STATS, {"raw": "[1, 2]"}, 400, "params"),
        ("params a string", CALL_STATS, {"raw": '"days"'}, 400, "params"),
        ("unknown param", CALL_STATS, {"body": {"dayz": 3}}, 400, "dayz"),
        ("wrong type", CALL_STATS, {"body": {"days": "seven"}}, 400, "days"),
        ("out of range", CALL_STATS, {"body": {"days": 0}}, 400, "days"),
        ("unknown query parameter", f"{CALL_STATS}?days=3", {"body": {}}, 400, "days"),
        ("tenant twice", f"{CALL_STATS}?tenant=a&tenant=b", {"body": {}}, 400, "tenant"),
        ("NUL in tenant", f"{CALL_STATS}?tenant=a%00b", {"body": {}}, 400, "tenant"),
        ("NUL in operation", "/api/v1/mcp/database/get%00stats", {"body": {}}, 400, "operation"),
        (
            "form-encoded body",
            CALL_STATS,
            {"raw": "days=3", "content_type": "application/x-www-form-urlencoded"},
            400,
            "params",
        ),
        ("unknown operation", "/api/v1/mcp/database/drop_everything", {"body": {}}, 404, None),
        ("unknown service", "/api/v1/mcp/nosuch/get_tenant_stats", {"body": {}}, 404, None),
    ],
)
def test_it_refuses_bad_input_naming_the_field(client, alice_key, label, url, kwargs, status, field):
    response = post(client, url, key=alice_key, **kwargs)
    assert response.status_code == status, (label, response.content[:300])
    error = response.json()["error"]
    assert error["code"] == ("validation_error" if status == 400 else "not_found"), (label, error)
    if field is not None:
        assert error["details"]["field"] == field, (label, error)
        assert field in error["message"], (label, error)


def test_it_answers_malformed_json_with_a_400(client, alice_key):
    response = post(client, CALL_STATS, raw='{"days": ', key=alice_key)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_it_serves_only_post(client, alice_key):
    response = client.get(STATS, HTTP_AUTHORIZATION=f"Bearer {alice_key}")
    assert response.status_code == 405
