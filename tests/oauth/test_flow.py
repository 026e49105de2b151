"""The authorization server and /mcp as a protected resource, in-process: discovery, PKCE,
registration, consent within the user's rights, tokens that act like keys, refresh, revocation."""

from __future__ import annotations

import pytest

from mcp_core.models import AuditEntry
from tests.mcp.helpers import LEGACY, call_tool, list_tools, post
from tests.oauth import flow
from tests.oauth.conftest import REDIRECT, RESOURCE

pytestmark = pytest.mark.django_db


def test_it_publishes_protected_resource_metadata_for_mcp_at_both_well_known_urls(client, db):
    for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
        document = client.get(path).json()
        assert document["resource"] == RESOURCE
        assert document["authorization_servers"] == ["http://testserver"]
        assert document["bearer_methods_supported"] == ["header"]
        assert "database:read" in document["scopes_supported"]
    assert client.get("/.well-known/oauth-protected-resource/elsewhere").status_code == 404


def test_it_publishes_authorization_server_metadata_with_s256_only_and_both_registrations(client, db):
    document = client.get("/.well-known/oauth-authorization-server").json()
    assert document["issuer"] == "http://testserver"
    assert document["authorization_endpoint"] == "http://testserver/oauth/authorize/"
    assert document["token_endpoint"] == "http://testserver/oauth/token/"
    assert document["revocation_endpoint"] == "http://testserver/oauth/revoke/"
    assert document["registration_endpoint"] == "http://testserver/oauth/register/"
    assert document["client_id_metadata_document_supported"] is True
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["response_types_supported"] == ["code"]
    assert document["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert document["authorization_response_iss_parameter_supported"] is True
    assert "none" in document["token_endpoint_auth_methods_supported"]


def test_it_points_an_unauthenticated_mcp_request_at_the_resource_metadata(client, db):
    response = post(client, "tools/list", key=None, era=LEGACY)
    assert response.status_code == 401
    challenge = response["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="askpro"')
    assert 'resource_metadata="http://testserver/.well-known/oauth-protected-resource/mcp"' in challenge
    assert "error=" not in challenge
    assert 'scope="*:read"' in challenge  # SEP-835: the least a client needs to start
    refused = post(client, "tools/list", key="eyJhbGciOiJIUzI1NiJ9.e30.x", era=LEGACY)
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused["WWW-Authenticate"]


def test_it_offers_only_the_users_tenants_and_scopes_on_the_consent_page(as_olga, alice):
    client_id = as_olga.register()["client_id"]
    _, _, page = as_olga.authorize(client_id, scope="database:read stripe:admin")
    assert page.status_code == 200
    html = page.content.decode()
    _, tenants, granted = flow.consent_form(html)
    assert tenants == [str(alice.pk)]  # no platform choice, no other tenant
    assert granted == ["database:read"]
    assert "Test MCP client" in html
    assert 'id="site-name"' in html or "AskPro" in html  # the admin's look


def test_it_issues_a_token_that_acts_like_a_tenant_key_with_the_consented_scopes(as_olga, olga, alice, bob):
    client_id = as_olga.register()["client_id"]
    tokens = as_olga.tokens_for(client_id, tenant=str(alice.pk), granted=["database:read"])
    assert tokens["token_type"] == "Bearer"
    assert tokens["scope"] == f"database:read tenant:{alice.pk}"
    assert tokens["refresh_token"]
    access = tokens["access_token"]
    tools = list_tools(as_olga.api, key=access, era=LEGACY)
    assert "database_get_call_stats" in tools
    assert not any(name.startswith("stripe_") for name in tools)
    result = call_tool(as_olga.api, "database_get_call_stats", {"days": 30}, key=access, era=LEGACY)
    assert result["isError"] is False and result["structuredContent"]["total"] == 1
    other = call_tool(as_olga.api, "database_get_tenant_stats", {"tenant": bob.slug}, key=access, era=LEGACY)
    assert other["isError"] is True and other["content"][0]["text"].startswith("forbidden:")
    rows = AuditEntry.objects.filter(transport="mcp", service="database").order_by("created_at")
    # (The refused call's row is rolled back with the test's transaction here; the live tests
    # see it.)
    assert [r.error_code for r in rows] == [""]
    assert all(r.user_id == olga.pk and r.principal.startswith("oauth:olga via") for r in rows)
    assert rows[0].tenant_id == alice.pk


def test_it_lets_a_superuser_grant_platform_scopes(as_root, bob):
    client_id = as_root.register()["client_id"]
    tokens = as_root.tokens_for(client_id, tenant="", granted=["*:read"])
    assert tokens["scope"] == "*:read"
    named = call_tool(
        as_root.api, "database_get_tenant_stats", {"tenant": bob.slug}, key=tokens["access_token"]
    )
    assert named["isError"] is False


def test_it_refuses_scopes_and_tenants_the_user_lacks(as_olga, olga, alice, bob):
    client_id = as_olga.register()["client_id"]
    verifier, params, page = as_olga.authorize(client_id)
    for tenant, granted in [
        (str(alice.pk), ["stripe:read"]),
        (str(alice.pk), ["database:write"]),
        (str(alice.pk), ["*"]),
        (str(bob.pk), ["database:read"]),
        ("", ["database:read"]),
        (str(alice.pk), []),
    ]:
        answer = as_olga.consent(params, page, tenant=tenant, granted=granted)
        assert answer.status_code == 200, (tenant, granted)  # the form again, with the error; no code
        assert "errorlist" in answer.content.decode()
    # The hidden scope field cannot carry more either: the consent form decides the scope.
    hidden, _, _ = flow.consent_form(page.content.decode())
    hidden["scope"] = f"* tenant:{bob.pk}"
    answer = as_olga.browser.post(
        "/oauth/authorize/?" + flow_query(params),
        flow.consent_post(hidden, tenant=str(alice.pk), granted=["database:read"]),
    )
    assert answer.status_code == 302
    code = flow.redirect_query(answer["Location"])["code"]
    tokens = as_olga.token(
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT,
        client_id=client_id,
        code_verifier=verifier,
    ).json()
    assert tokens["scope"] == f"database:read tenant:{alice.pk}"


def test_it_cuts_a_token_down_when_the_user_loses_rights(as_olga, olga, alice):
    client_id = as_olga.register()["client_id"]
    access = as_olga.tokens_for(client_id, tenant=str(alice.pk), granted=["database:read"])["access_token"]
    olga.operator_access.all().delete()
    result = call_tool(as_olga.api, "database_get_call_stats", {"days": 30}, key=access, era=LEGACY)
    assert result["isError"] is True and result["content"][0]["text"].startswith("forbidden:")
    olga.is_active = False
    olga.save()
    assert post(as_olga.api, "tools/list", key=access, era=LEGACY).status_code == 401


def flow_query(params: dict) -> str:
    from urllib.parse import urlencode

    return urlencode(params)
