"""The official MCP SDK client's OAuth support against a live server, in both protocol eras:
discovery from the 401, registration by metadata document (CIMD) and by dynamic registration,
a scripted person on the consent page, the token, tools/list, tools/call, and a refresh."""

from __future__ import annotations

import time

import anyio
import httpx2
import pytest
from bs4 import BeautifulSoup
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from oauth2_provider.models import AccessToken, Application

from mcp_core.models import AuditEntry
from tests.mcp.conftest import child_env, gunicorn_server
from tests.oauth import flow
from tests.oauth.conftest import PASSWORD

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MODES = ["legacy", "2026-07-28"]


@pytest.fixture(scope="module")
def oauth_server(django_db_setup, django_db_blocker, ca, tmp_path_factory):
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with django_db_blocker.unblock():
        # The server trusts the test CA (SSL_CERT_FILE) and may fetch documents from loopback.
        env = child_env(OAUTH_CIMD_ALLOW_LOOPBACK="1", SSL_CERT_FILE=str(ca_file))
    with gunicorn_server(env) as url:
        yield url


class MemoryStorage:
    """The SDK's TokenStorage, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info):
        self.client_info = client_info


async def sign_in(browser: httpx2.AsyncClient, origin: str, username: str) -> None:
    """Through the admin's login page, as a person would."""
    login = await browser.get(f"{origin}/admin/login/")
    token = BeautifulSoup(login.text, "html.parser").find("input", attrs={"name": "csrfmiddlewaretoken"})
    signed_in = await browser.post(
        f"{origin}/admin/login/",
        data={
            "csrfmiddlewaretoken": token["value"],
            "username": username,
            "password": PASSWORD,
            "next": "/admin/",
        },
    )
    assert signed_in.status_code == 302, signed_in.text[:500]


class ScriptedPerson:
    """Signs in to the admin and answers the consent page the way a person would."""

    def __init__(self, origin: str, username: str, *, tenant: str, granted: list[str]) -> None:
        self.origin, self.username, self.tenant, self.granted = origin, username, tenant, granted
        self.seen: dict = {}
        self.answer: dict[str, str] = {}

    async def redirect_handler(self, authorization_url: str) -> None:
        async with httpx2.AsyncClient(follow_redirects=False, timeout=30) as browser:
            await sign_in(browser, self.origin, self.username)
            page = await browser.get(authorization_url)
            assert page.status_code == 200, page.text[:2000]
            hidden, tenants, offered = flow.consent_form(page.text)
            self.seen = {"hidden": hidden, "tenants": tenants, "offered": offered, "url": authorization_url}
            answer = await browser.post(
                authorization_url, data=flow.consent_post(hidden, tenant=self.tenant, granted=self.granted)
            )
            assert answer.status_code == 302, answer.text[:2000]
            self.answer = flow.redirect_query(answer.headers["location"])

    async def callback_handler(self) -> AuthorizationCodeResult:
        return AuthorizationCodeResult(
            code=self.answer["code"], state=self.answer.get("state"), iss=self.answer.get("iss")
        )


async def _session(url: str, provider: OAuthClientProvider, mode: str, *, refresh: bool) -> dict:
    async with (
        httpx2.AsyncClient(auth=provider, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        listed = await client.list_tools()
        stats = await client.call_tool("database_get_call_stats", {"days": 30})
        foreign = await client.call_tool("database_get_tenant_stats", {"tenant": "bob-practice"})
        first = provider.context.current_tokens
        after_refresh = None
        if refresh:
            # The access token has run out (as the client sees it): the SDK refreshes.
            provider.context.token_expiry_time = time.time() - 1
            after_refresh = await client.call_tool("database_get_call_stats", {"days": 7})
        return {
            "version": client.protocol_version,
            "tools": [tool.name for tool in listed.tools],
            "stats": stats,
            "foreign": foreign,
            "first": first,
            "after_refresh": after_refresh,
            "second": provider.context.current_tokens,
        }


def _metadata(redirect_uri: str) -> OAuthClientMetadata:
    return OAuthClientMetadata(
        client_name="SDK test client",
        redirect_uris=[redirect_uri],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="none",
    )


def _check(outcome: dict, mode: str, person: ScriptedPerson, alice) -> None:
    assert outcome["version"] == ("2025-11-25" if mode == "legacy" else mode)
    # The consent page offered only the person's own tenant and scopes.
    assert person.seen["tenants"] == [str(alice.pk)]
    assert person.seen["offered"] == ["database:read"]
    assert "resource=" in person.seen["url"] and "code_challenge_method=S256" in person.seen["url"]
    assert "database_get_call_stats" in outcome["tools"]
    assert not any(name.startswith("stripe_") for name in outcome["tools"])
    assert outcome["stats"].is_error is False
    assert outcome["stats"].structured_content["total"] == 1
    assert outcome["foreign"].is_error is True
    assert outcome["foreign"].content[0].text.startswith("forbidden:")
    assert outcome["first"].scope == f"database:read tenant:{alice.pk}"
    assert outcome["after_refresh"].is_error is False
    assert outcome["after_refresh"].structured_content["days"] == 7
    assert outcome["second"].access_token != outcome["first"].access_token
    assert outcome["second"].refresh_token != outcome["first"].refresh_token


def _check_audit(olga, alice) -> None:
    rows = AuditEntry.objects.filter(transport="mcp", service="database").order_by("created_at")
    assert [r.error_code for r in rows] == ["", "forbidden", ""]
    assert all(r.user_id == olga.pk and r.principal.startswith("oauth:olga via") for r in rows)
    assert {r.tenant_id for r in rows} == {alice.pk}


@pytest.mark.parametrize("mode", MODES)
def test_it_takes_the_sdk_client_through_dynamic_registration(oauth_server, olga, alice, bob, mode):
    origin = oauth_server.removesuffix("/mcp")
    person = ScriptedPerson(origin, "olga", tenant=str(alice.pk), granted=["database:read"])
    provider = OAuthClientProvider(
        server_url=oauth_server,
        client_metadata=_metadata("http://127.0.0.1:9/callback"),
        storage=MemoryStorage(),
        redirect_handler=person.redirect_handler,
        callback_handler=person.callback_handler,
    )
    outcome = anyio.run(lambda: _session(oauth_server, provider, mode, refresh=True))
    _check(outcome, mode, person, alice)
    _check_audit(olga, alice)
    app = Application.objects.get(client_id=provider.context.client_info.client_id)
    assert app.registration_source == Application.RegistrationSource.DCR
    assert AccessToken.objects.filter(user=olga, application=app).count() == 1  # the refreshed one


@pytest.mark.parametrize("mode", MODES)
def test_it_takes_the_sdk_client_through_a_client_metadata_document(
    oauth_server, documents, olga, alice, bob, mode
):
    origin = oauth_server.removesuffix("/mcp")
    redirect_uri = "http://127.0.0.1:9/cimd-callback"
    client_id = documents.publish(f"/clients/{mode}.json", [redirect_uri])
    person = ScriptedPerson(origin, "olga", tenant=str(alice.pk), granted=["database:read"])
    provider = OAuthClientProvider(
        server_url=oauth_server,
        client_metadata=_metadata(redirect_uri),
        storage=MemoryStorage(),
        redirect_handler=person.redirect_handler,
        callback_handler=person.callback_handler,
        client_metadata_url=client_id,
    )
    outcome = anyio.run(lambda: _session(oauth_server, provider, mode, refresh=True))
    _check(outcome, mode, person, alice)
    _check_audit(olga, alice)
    assert provider.context.client_info.client_id == client_id  # no registration request
    app = Application.objects.get(client_id=client_id)
    assert app.registration_source == Application.RegistrationSource.CIMD
    assert app.name == "CIMD test client"
    # Fetched once: the document's Cache-Control (max-age=300) covers the token requests too.
    assert documents.fetches[f"/clients/{mode}.json"] == 1


def test_it_refuses_a_redirect_uri_the_metadata_document_does_not_list(oauth_server, documents, olga):
    client_id = documents.publish("/clients/exact.json", ["http://127.0.0.1:9/exact"])
    _, challenge = flow.pkce()

    async def ask(redirect_uri: str) -> httpx2.Response:
        origin = oauth_server.removesuffix("/mcp")
        async with httpx2.AsyncClient(follow_redirects=False) as browser:
            await sign_in(browser, origin, "olga")
            params = flow.authorize_params(client_id, redirect_uri, challenge)
            return await browser.get(origin + "/oauth/authorize/", params=params)

    assert anyio.run(ask, "http://127.0.0.1:9/exact").status_code == 200  # the consent page
    for other in ("http://127.0.0.1:9/exact/", "http://127.0.0.1:10/exact", "http://localhost:9/exact"):
        # An error page: never a redirect to an address the document does not list.
        assert anyio.run(ask, other).status_code == 400, other
