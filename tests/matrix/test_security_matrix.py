"""The security matrix, generated from the registry: every operation, every refusal.

A new operation is covered the moment it is registered. Authorization outcomes come
before execution, so operations that would call an upstream need no credentials here;
the cross-tenant cases do execute, and then any outcome but a leak or a change to the
other tenant's records is acceptable.
"""

from __future__ import annotations

import json

import pytest

from mcp_core.contracts import ErrorCode
from mcp_core.registry import get_registry

from .conftest import api_call, body_for, record_ids, tenant_markers, tenant_snapshot
from .params import NOTHING, non_null, valid_params

OPERATIONS = get_registry().operations()
TENANT_OPS = [op for op in OPERATIONS if op.tenant_scoped and not op.platform_only]
PLATFORM_ONLY_OPS = [op for op in OPERATIONS if op.platform_only]
ids = lambda op: op.tool_name  # noqa: E731

LOWER_LEVELS = {"read": [], "write": ["read"], "admin": ["read", "write"]}


def _assert_error(status, body, code: ErrorCode, http: int):
    assert status == http, body
    assert body["success"] is False and body["data"] is None, body
    assert body["error"]["code"] == str(code), body


def _platform_body(op, params, tenant):
    return body_for(op, params, tenant=tenant.slug if op.tenant_scoped else None)


@pytest.mark.parametrize("op", OPERATIONS, ids=ids)
def test_it_refuses_a_call_without_a_valid_key(op, client, alice):
    body = _platform_body(op, valid_params(op), alice)
    for key in (None, "askp_0000000000_not-a-real-secret", "not even a key"):
        status, answer, response = api_call(client, key, body)
        _assert_error(status, answer, ErrorCode.UNAUTHORIZED, 401)
        assert response["WWW-Authenticate"].startswith("Bearer"), key


@pytest.mark.parametrize("op", OPERATIONS, ids=ids)
def test_it_refuses_a_key_without_the_operations_scope(op, client, alice, scoped_key):
    params = valid_params(op)
    # Every level below the one needed, and a key for another service at every level.
    wrong_scopes = [["zzother:*"]] + [[f"{op.service}:{level}"] for level in LOWER_LEVELS[op.scope_level]]
    cases = [(None, scopes) for scopes in wrong_scopes]
    if not op.platform_only:
        cases += [(alice, wrong_scopes[-1])]
    for tenant, scopes in cases:
        key = scoped_key(tenant=tenant, scopes=scopes)
        body = _platform_body(op, params, alice) if tenant is None else body_for(op, params)
        status, answer, _ = api_call(client, key, body)
        _assert_error(status, answer, ErrorCode.FORBIDDEN, 403)
        assert answer["error"]["details"].get("required_scope") == op.scope, answer


@pytest.mark.parametrize("op", OPERATIONS, ids=ids)
def test_it_lets_a_key_with_exactly_the_operations_scope_past_authorization(op, client, alice, scoped_key):
    """The other half of the scope test: the refusal above is about the scope, nothing else.

    An unknown param makes the call stop at validation, which comes right after the scope
    check, so no operation (and no upstream) runs here.
    """
    params = {**valid_params(op), "zz_unknown_param": 1}
    for scope in (op.scope, f"{op.service}:*", f"*:{op.scope_level}"):
        if op.platform_only:
            key = scoped_key(tenant=None, scopes=[scope])
            body = _platform_body(op, params, alice)
        else:
            key = scoped_key(tenant=alice, scopes=[scope])
            body = body_for(op, params)
        status, answer, _ = api_call(client, key, body)
        assert status == 400, (scope, answer)
        assert answer["error"]["details"]["field"] == "zz_unknown_param", (scope, answer)


@pytest.mark.parametrize("op", [op for op in OPERATIONS if not op.platform_only], ids=ids)
def test_it_refuses_a_tenant_key_naming_another_tenant(op, client, alice, bob, bob_key):
    params = valid_params(op)
    before = tenant_snapshot(alice)
    for named in (alice.slug, alice.pk, str(alice.pk)):
        status, answer, _ = api_call(client, bob_key, body_for(op, params, tenant=named))
        _assert_error(status, answer, ErrorCode.FORBIDDEN, 403)
        assert answer["error"]["details"].get("field") == "tenant", answer
    assert tenant_snapshot(alice) == before
    if not op.tenant_scoped:
        return  # (running a platform-wide operation for its own sake proves nothing here)
    # Naming its own tenant is harmless and not refused as cross-tenant.
    status, answer, _ = api_call(client, bob_key, body_for(op, params, tenant=bob.slug))
    assert (answer.get("error") or {}).get("code") not in {"forbidden", "unauthorized"}, answer


def _cross_tenant_variants(op, alice) -> list[tuple[str, dict]]:
    """Params that point at tenant A's records: its ids, its numbers, text that matches it."""
    a_ids = record_ids(alice)
    probes = [alice.slug.split("-")[0], alice.slug, a_ids["customer_phone"], a_ids["phone_number"]]

    def with_ids(name, schema):
        return a_ids.get(name, NOTHING)

    def text_hint(probe):
        def hint(name, schema):
            branch = non_null(schema, {}) if "$ref" not in schema else None
            if (
                branch
                and branch.get("type") == "string"
                and not branch.get("format")
                and "enum" not in branch
            ) and branch.get("minLength", 0) <= len(probe) <= branch.get("maxLength", 10_000):
                return probe
            return NOTHING

        return hint

    hints = [("A's ids", with_ids)] + [(f"text {probe!r}", text_hint(probe)) for probe in probes]
    hints.append(
        ("A's ids and text", lambda n, s: with_ids(n, s) if n in a_ids else text_hint(probes[0])(n, s))
    )
    variants = [("minimal", valid_params(op))]
    for label, hint in hints:
        params = valid_params(op, hint=hint)
        if all(params != seen for _, seen in variants):
            variants.append((label, params))
    return variants


@pytest.mark.parametrize("op", TENANT_OPS, ids=ids)
def test_it_never_shows_or_changes_another_tenants_records(op, client, alice, bob, bob_key):
    # Only what identifies A alone: text both tenants share (a branch called Main) proves nothing.
    markers = sorted(set(tenant_markers(alice)) - set(tenant_markers(bob)))
    assert len(markers) >= 5, "tenant A has identifying data to look for"
    before = tenant_snapshot(alice)
    for label, params in _cross_tenant_variants(op, alice):
        status, answer, _ = api_call(client, bob_key, body_for(op, params))
        assert status != 500, (label, answer)
        text = json.dumps(answer, ensure_ascii=False)
        # What the caller sent may be echoed back; anything else of A's is a leak.
        sent = json.dumps(params, ensure_ascii=False)
        leaked = [m for m in markers if m in text and m not in sent]
        assert not leaked, f"{op.tool_name} ({label}) showed tenant A's data {leaked}: {answer}"
        if not answer["success"]:
            assert answer["error"]["code"] != "internal_error", (label, answer)
        else:
            assert answer["metadata"]["tenant_id"] == bob.pk, answer
    assert tenant_snapshot(alice) == before, f"{op.tool_name} changed tenant A's records"


@pytest.mark.parametrize("op", TENANT_OPS, ids=ids)
def test_it_answers_not_found_or_forbidden_for_another_tenants_record_ids(op, client, alice, bob, bob_key):
    """Where an operation takes a record id, tenant A's id is not one of B's records."""
    a_ids = record_ids(alice)
    props = {name for name in valid_params(op, hint=lambda n, s: a_ids.get(n, NOTHING)) if name in a_ids}
    own_ids = record_ids(bob)
    for name in sorted(props):
        if not name.endswith(("_id", "_uid")) or name == "call_pk":
            continue
        params = valid_params(op, hint=lambda n, s, name=name: a_ids[n] if n == name else NOTHING)
        status, answer, _ = api_call(client, bob_key, body_for(op, params))
        assert not answer["success"], (name, answer)
        error = answer["error"]
        own = valid_params(op, hint=lambda n, s, name=name: own_ids[n] if n == name else NOTHING)
        _, own_answer, _ = api_call(client, bob_key, body_for(op, own))
        own_error = own_answer.get("error") or {}
        if op.annotations.open_world and error["code"] in {
            "not_configured",
            "upstream_error",
            "circuit_open",
        }:
            continue  # refused before it could look the record up
        if (
            error["details"].get("field") not in (None, name)
            and own_error.get("details", {}).get("field") == (error["details"]["field"])
        ):
            # The generated params fail on another field first, for A's id and B's alike:
            # the operation never reached the record (no leak, nothing changed: see above).
            continue
        assert error["code"] in {"not_found", "forbidden"}, (name, answer)
        assert error["details"].get("field") == name, answer
        # B's own record of the same kind is not refused as missing or foreign: the refusal is about ownership.
        assert (
            own_error.get("code") not in {"not_found", "forbidden"}
            or own_error.get("details", {}).get("field") != name
        ), (name, own_answer)


@pytest.mark.parametrize("op", PLATFORM_ONLY_OPS, ids=ids)
def test_it_refuses_platform_only_operations_to_tenant_keys(op, client, alice, alice_key):
    before = tenant_snapshot(alice)
    for body in (body_for(op, valid_params(op)), body_for(op, valid_params(op), tenant=alice.slug)):
        status, answer, _ = api_call(client, alice_key, body)
        _assert_error(status, answer, ErrorCode.FORBIDDEN, 403)
    assert tenant_snapshot(alice) == before


@pytest.mark.parametrize("op", [op for op in OPERATIONS if op.tenant_scoped], ids=ids)
def test_it_asks_a_platform_key_to_name_the_tenant(op, client, alice, platform_key):
    status, answer, _ = api_call(client, platform_key, body_for(op, valid_params(op)))
    _assert_error(status, answer, ErrorCode.VALIDATION_ERROR, 400)
    assert answer["error"]["details"]["field"] == "tenant", answer
    assert "tenant" in answer["error"]["message"]
    status, answer, _ = api_call(
        client, platform_key, body_for(op, valid_params(op), tenant="no-such-tenant")
    )
    _assert_error(status, answer, ErrorCode.NOT_FOUND, 404)
    assert answer["error"]["details"]["field"] == "tenant", answer


def test_it_detects_a_leak_when_there_is_one(client, alice, alice_key):
    """The leak check above can fail: tenant A's own search shows A's markers."""
    op = get_registry().get_operation("database", "search")
    status, answer, _ = api_call(client, alice_key, body_for(op, {"query": "alice"}))
    assert status == 200, answer
    text = json.dumps(answer, ensure_ascii=False)
    assert any(m in text for m in tenant_markers(alice))


def test_it_covers_every_registered_operation():
    """Guard against an empty parametrization silently passing."""
    assert len(OPERATIONS) >= 7
    assert {op.tool_name for op in TENANT_OPS} >= {
        "database_get_call_stats",
        "database_search",
        "database_get_phone_branch_mapping",
    }
    assert "database_query" in {op.tool_name for op in PLATFORM_ONLY_OPS}
