"""API keys: only a hash is stored; revoked, expired and inactive-tenant keys are refused;
scopes nest; the tenant binding of a key cannot be talked around."""

from __future__ import annotations

import hashlib
from datetime import timedelta as td

import pytest
from django.db import connection
from django.utils import timezone

from mcp_core.api_keys import ScopeError, api_key_authenticate, api_key_create, bearer_token, validate_scopes
from mcp_core.contracts import Principal
from mcp_core.models import ApiKey
from mcp_core.pipeline import call_operation


def test_it_stores_a_hash_and_never_the_secret(alice):
    key, raw = api_key_create(name="ci", scopes=["database:read"], tenant=alice)
    assert raw.startswith(f"askp_{key.prefix}_") and len(raw) > 40
    assert key.secret_hash == hashlib.sha256(raw.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM mcp_core_apikey WHERE id = %s", [key.pk])
        row = cursor.fetchone()
    secret_part = raw.split("_", 2)[2]
    assert not any(isinstance(v, str) and secret_part in v for v in row)
    assert api_key_authenticate(raw).api_key_id == key.pk


def test_it_refuses_unknown_tampered_and_malformed_keys(alice, alice_key):
    prefix = alice_key.split("_")[1]
    for raw in (
        None,
        "",
        "askp_",
        "askp_short_x",
        alice_key + "x",
        f"askp_{prefix}_wrong",
        "Bearer " + alice_key,
    ):
        assert api_key_authenticate(raw) is None, raw


def test_it_refuses_revoked_and_expired_keys(alice, client):
    now = timezone.now()
    revoked, raw_revoked = api_key_create(name="r", scopes=["*"], tenant=alice)
    ApiKey.objects.filter(pk=revoked.pk).update(revoked_at=now - td(seconds=1))
    expired, raw_expired = api_key_create(
        name="e", scopes=["*"], tenant=alice, expires_at=now - td(seconds=1)
    )
    later, raw_later = api_key_create(name="l", scopes=["*"], tenant=alice, expires_at=now + td(days=1))
    assert api_key_authenticate(raw_revoked) is None
    assert api_key_authenticate(raw_expired) is None
    assert api_key_authenticate(raw_later) is not None
    for raw in (raw_revoked, raw_expired):
        response = client.post(
            "/api/v1/mcp/call",
            data={"service": "database", "operation": "get_tenant_stats"},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {raw}",
        )
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"


def test_it_refuses_keys_of_an_inactive_tenant(alice, alice_key, platform_key):
    alice.is_active = False
    alice.save(update_fields=["is_active"])
    assert api_key_authenticate(alice_key) is None
    # A platform key cannot act for an inactive tenant either.
    response = call_operation(
        "database", "get_tenant_stats", principal=api_key_authenticate(platform_key), tenant=alice.slug
    )
    assert response.error["code"] == "forbidden" and response.error["details"]["field"] == "tenant"


def test_it_updates_last_used_at_at_most_once_a_minute(alice):
    key, raw = api_key_create(name="u", scopes=["*"], tenant=alice)
    assert key.last_used_at is None
    api_key_authenticate(raw)
    key.refresh_from_db()
    first = key.last_used_at
    assert first is not None and timezone.now() - first < td(seconds=5)
    api_key_authenticate(raw)
    key.refresh_from_db()
    assert key.last_used_at == first
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=first - td(minutes=5))
    api_key_authenticate(raw)
    key.refresh_from_db()
    assert key.last_used_at > first - td(minutes=5)


SCOPE_CASES = [
    ({"*"}, "stripe:admin", True),
    ({"database:read"}, "database:read", True),
    ({"database:read"}, "database:write", False),
    ({"database:write"}, "database:read", True),
    ({"database:write"}, "database:admin", False),
    ({"database:admin"}, "database:read", True),
    ({"database:admin"}, "database:write", True),
    ({"database:*"}, "database:admin", True),
    ({"database:*"}, "stripe:read", False),
    ({"*:read"}, "stripe:read", True),
    ({"*:read"}, "stripe:write", False),
    ({"*:admin"}, "calcom:write", True),
    ({"stripe:read", "database:admin"}, "stripe:write", False),
    (set(), "database:read", False),
]


@pytest.mark.parametrize(("scopes", "needed", "granted"), SCOPE_CASES)
def test_it_nests_scope_levels(scopes, needed, granted):
    principal = Principal(kind="api_key", name="k", scopes=frozenset(scopes))
    assert principal.has_scope(needed) is granted


def test_it_validates_scopes(db):
    assert validate_scopes([" database:read ", "database:read", "*"]) == ["*", "database:read"]
    for bad in (["database"], ["database:delete"], [":read"], ["", " "]):
        with pytest.raises(ScopeError):
            validate_scopes(bad)
    with pytest.raises(ScopeError, match="unknown service"):
        validate_scopes(["nosuch:read"], known_services={"database"})
    assert validate_scopes(["*:read", "database:*"], known_services={"database"}) == ["*:read", "database:*"]


def test_it_reads_only_bearer_tokens():
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    for header in (None, "", "Basic abc", "Bearer", "Bearer   ", "Token abc"):
        assert bearer_token(header) is None
