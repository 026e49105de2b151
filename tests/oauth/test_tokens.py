"""What a token is worth: PKCE, exact redirect URIs, refresh rotation, revocation, audience,
expiry and signature; and the user's and the operators' view of authorised clients."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application, RefreshToken

from tests.mcp.helpers import LEGACY, post
from tests.oauth import flow
from tests.oauth.conftest import REDIRECT, RESOURCE

pytestmark = pytest.mark.django_db


def _works(api, access: str) -> bool:
    response = post(api, "tools/list", key=access, era=LEGACY)
    assert response.status_code in (200, 401), response.content
    return response.status_code == 200


@pytest.fixture
def issued(as_olga, alice):
    client_id = as_olga.register()["client_id"]
    return client_id, as_olga.tokens_for(client_id, tenant=str(alice.pk), granted=["database:read"])


def test_it_requires_pkce_with_s256(as_olga, alice):
    client_id = as_olga.register()["client_id"]
    for extra in (
        {"code_challenge": None, "code_challenge_method": None},
        {"code_challenge_method": "plain"},
    ):
        _, _, page = as_olga.authorize(client_id, **extra)
        assert page.status_code == 302
        assert flow.redirect_query(page["Location"])["error"] == "invalid_request"


def test_it_refuses_a_code_without_its_verifier(as_olga, alice):
    client_id = as_olga.register()["client_id"]
    code, verifier = as_olga.code_for(client_id, tenant=str(alice.pk), granted=["database:read"])
    base = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": client_id,
    }
    for wrong, error in (
        ({}, "invalid_request"),
        ({"code_verifier": verifier[:-1] + ("A" if verifier[-1] != "A" else "B")}, "invalid_grant"),
    ):
        refused = as_olga.token(**base, **wrong)
        assert refused.status_code == 400 and refused.json()["error"] == error


def test_it_matches_redirect_uris_exactly(as_olga, alice):
    client_id = as_olga.register()["client_id"]
    for other in (
        REDIRECT + "/x",
        REDIRECT + "?a=1",
        "https://client.example:444/callback",
        "http://client.example/callback",
        "https://CLIENT.example/callback",
    ):
        _, _, page = as_olga.authorize(client_id, redirect_uri=other)
        # Never sent to an unregistered address: an error page here, no redirect.
        assert page.status_code == 400, other
    code, verifier = as_olga.code_for(client_id, tenant=str(alice.pk), granted=["database:read"])
    refused = as_olga.token(
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT + "/x",
        client_id=client_id,
        code_verifier=verifier,
    )
    assert refused.status_code == 400


def test_it_matches_loopback_redirect_uris_with_their_port(as_olga):
    client_id = as_olga.register("http://127.0.0.1:8765/cb")["client_id"]
    _, _, page = as_olga.authorize(client_id, redirect_uri="http://127.0.0.1:8765/cb")
    assert page.status_code == 200
    for other in ("http://127.0.0.1:8766/cb", "http://127.0.0.1/cb", "http://localhost:8765/cb"):
        _, _, page = as_olga.authorize(client_id, redirect_uri=other)
        assert page.status_code == 400, other


def test_it_refuses_to_authorise_for_another_resource(as_olga):
    client_id = as_olga.register()["client_id"]
    _, _, page = as_olga.authorize(client_id, resource="https://elsewhere.example/mcp")
    assert page.status_code == 302
    query = flow.redirect_query(page["Location"])
    assert query["error"] == "invalid_target" and query["state"]


def test_it_rotates_refresh_tokens_and_ends_a_reused_family(as_olga, issued):
    client_id, first = issued
    refreshed = as_olga.token(
        grant_type="refresh_token",
        refresh_token=first["refresh_token"],
        client_id=client_id,
        resource=RESOURCE,
    )
    assert refreshed.status_code == 200, refreshed.content
    second = refreshed.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["scope"] == first["scope"]
    assert _works(as_olga.api, second["access_token"])
    assert not _works(as_olga.api, first["access_token"])  # the old access token ended with its refresh
    claims = jwt.decode(second["access_token"], options={"verify_signature": False})
    assert claims["aud"] == [RESOURCE]
    # The old refresh token again: refused, and the whole family with it (a stolen token's use).
    replay = as_olga.token(
        grant_type="refresh_token", refresh_token=first["refresh_token"], client_id=client_id
    )
    assert replay.status_code == 400
    after = as_olga.token(
        grant_type="refresh_token", refresh_token=second["refresh_token"], client_id=client_id
    )
    assert after.status_code == 400
    assert not _works(as_olga.api, second["access_token"])


def test_it_refuses_a_refresh_for_another_resource(as_olga, issued):
    client_id, first = issued
    refused = as_olga.token(
        grant_type="refresh_token",
        refresh_token=first["refresh_token"],
        client_id=client_id,
        resource="https://elsewhere.example/mcp",
    )
    # (django-oauth-toolkit sends this one without a JSON content type.)
    assert refused.status_code == 400 and json.loads(refused.content)["error"] == "invalid_target"


def test_it_revokes_access_and_refresh_tokens(as_olga, issued):
    client_id, tokens = issued
    assert _works(as_olga.api, tokens["access_token"])
    revoked = as_olga.api.post("/oauth/revoke/", {"token": tokens["access_token"], "client_id": client_id})
    assert revoked.status_code == 200
    assert not _works(as_olga.api, tokens["access_token"])
    as_olga.api.post("/oauth/revoke/", {"token": tokens["refresh_token"], "client_id": client_id})
    refused = as_olga.token(
        grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=client_id
    )
    assert refused.status_code == 400


def test_it_refuses_a_token_for_another_audience(as_olga, issued):
    _, tokens = issued
    access = tokens["access_token"]
    # The same token at the same server under another name is presented to another resource.
    response = post(as_olga.api, "tools/list", key=access, era=LEGACY, headers={"Host": "localhost"})
    assert response.status_code == 401
    # Signed with our key but for another audience: refused, even with its checksum stored.
    claims = jwt.decode(access, options={"verify_signature": False})
    forged = jwt.encode(
        {**claims, "aud": ["https://elsewhere.example/mcp"]}, settings.OAUTH_TOKEN_SIGNING_KEY
    )
    row = AccessToken.objects.get(user__isnull=False)
    AccessToken.objects.create(
        user=row.user, application=row.application, token=forged, expires=row.expires, scope=row.scope
    )
    assert not _works(as_olga.api, forged)
    # An OAuth token is not an API key: the REST API refuses it.
    api = as_olga.api.get("/api/v1/mcp/services", headers={"Authorization": f"Bearer {access}"})
    assert api.status_code == 401


def test_it_refuses_an_expired_token(as_olga, issued):
    _, tokens = issued
    AccessToken.objects.update(expires=timezone.now() - timedelta(seconds=1))
    assert not _works(as_olga.api, tokens["access_token"])
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    stale = jwt.encode(
        {**claims, "exp": int(time.time()) - 5, "jti": "stale"}, settings.OAUTH_TOKEN_SIGNING_KEY
    )
    assert not _works(as_olga.api, stale)


def test_it_refuses_a_token_with_a_tampered_signature_or_payload(as_olga, issued):
    _, tokens = issued
    access = tokens["access_token"]
    header, payload, signature = access.split(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    assert not _works(as_olga.api, f"{header}.{payload}.{flipped}")
    claims = jwt.decode(access, options={"verify_signature": False})
    widened = jwt.encode({**claims, "scope": "*"}, "not-our-key-but-long-enough-for-hs256-0123456789")
    assert not _works(as_olga.api, widened)
    unsigned = jwt.encode({**claims, "scope": "*"}, None, algorithm="none")
    assert not _works(as_olga.api, unsigned)
    assert _works(as_olga.api, access)


def test_it_registers_only_code_flow_clients(as_olga):
    for grant_types in (["client_credentials"], ["password"], ["implicit"]):
        response = as_olga.api.post(
            "/oauth/register/",
            flow.registration(REDIRECT, grant_types=grant_types),
            content_type="application/json",
        )
        assert response.status_code == 400 and response.json()["error"] == "invalid_client_metadata"
    for body in (b"{", b"[]", b'{"redirect_uris": "x"}'):
        response = as_olga.api.post("/oauth/register/", body, content_type="application/json")
        assert response.status_code == 400


def test_it_sends_a_refusal_back_to_the_client(as_olga, alice):
    client_id = as_olga.register()["client_id"]
    _, params, page = as_olga.authorize(client_id)
    answer = as_olga.consent(params, page, tenant=str(alice.pk), granted=[], allow=False)
    assert answer.status_code == 302
    assert flow.redirect_query(answer["Location"])["error"] == "access_denied"
    assert not AccessToken.objects.filter(user__isnull=False).exists()


def test_it_lists_a_users_clients_and_revokes_one(as_olga, issued, root, client):
    client_id, tokens = issued
    page = as_olga.browser.get("/oauth/clients/").content.decode()
    assert "Test MCP client" in page and "alice-salon" in page and "database:read" in page
    assert tokens["access_token"] not in page and tokens["refresh_token"] not in page
    # Someone else's list does not show it.
    client.force_login(root)
    assert "Test MCP client" not in client.get("/oauth/clients/").content.decode()
    app = Application.objects.get(client_id=client_id)
    assert as_olga.browser.post(f"/oauth/clients/{app.pk}/revoke/").status_code == 302
    assert not _works(as_olga.api, tokens["access_token"])
    assert not RefreshToken.objects.filter(revoked__isnull=True).exists()
    assert "No client holds a token" in as_olga.browser.get("/oauth/clients/").content.decode()


def test_it_shows_operators_every_client_and_token_in_the_admin(as_olga, issued, root, client):
    client_id, tokens = issued
    client.force_login(root)
    apps = client.get("/admin/oauth2_provider/application/").content.decode()
    assert "Test MCP client" in apps
    listed = client.get("/admin/oauth2_provider/accesstoken/").content.decode()
    assert "olga" in listed
    assert tokens["access_token"] not in listed
    assert tokens["access_token"][-20:] not in listed


def test_it_clears_expired_tokens_on_schedule(as_olga, issued):
    from dashboard.schedule import SCHEDULE
    from mcp_core.oauth.tasks import clear_expired_task

    assert "oauth.clear_expired" in {p.task for p in SCHEDULE}
    AccessToken.objects.filter(user__isnull=False).update(expires=timezone.now() - timedelta(days=400))
    clear_expired_task()
    assert not AccessToken.objects.filter(user__isnull=False).exists()
