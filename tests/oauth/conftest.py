"""People who consent, and a helper that takes a client through the whole flow in-process."""

from __future__ import annotations

import json

import pytest
import trustme
from django.contrib.auth import get_user_model
from django.test import Client

from mcp_core.models import OperatorAccess
from tests.oauth import flow
from tests.oauth.documents import DocumentServer

PASSWORD = "a-long-test-password-1"
REDIRECT = "https://client.example/callback"
RESOURCE = "http://testserver/mcp"


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def documents(ca):
    """Client metadata documents over HTTPS on 127.0.0.1, signed by the test CA."""
    with DocumentServer(ca) as server:
        yield server


@pytest.fixture
def trusting_ca(ca, tmp_path, monkeypatch):
    """This process's TLS trusts the test CA (ssl's default context reads SSL_CERT_FILE)."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    monkeypatch.setenv("SSL_CERT_FILE", str(path))


@pytest.fixture
def olga(alice, bob):
    """A support operator who may read Alice's database records, and nothing else."""
    user = get_user_model().objects.create_user("olga", "olga@example.com", PASSWORD, is_staff=True)
    grant = OperatorAccess.objects.create(name="alice support", user=user, scopes=["database:read"])
    grant.tenants.add(alice)
    return user


@pytest.fixture
def root(db):
    return get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)


class InProcessFlow:
    """Registration, consent and token requests through Django's test client."""

    def __init__(self, user) -> None:
        self.browser = Client()
        self.browser.force_login(user)
        self.api = Client()  # the MCP client's own requests: no session

    def register(self, redirect_uri: str = REDIRECT, **extra) -> dict:
        response = self.api.post(
            "/oauth/register/",
            json.dumps(flow.registration(redirect_uri, **extra)),
            content_type="application/json",
        )
        assert response.status_code == 201, response.content
        return response.json()

    def authorize(self, client_id: str, *, redirect_uri: str = REDIRECT, scope: str = "", **extra):
        verifier, challenge = flow.pkce()
        params = flow.authorize_params(client_id, redirect_uri, challenge, **{"resource": RESOURCE, **extra})
        if scope:
            params["scope"] = scope
        params = {k: v for k, v in params.items() if v is not None}
        return verifier, params, self.browser.get("/oauth/authorize/", params)

    def consent(self, params: dict, page, *, tenant: str, granted: list[str], allow: bool = True):
        hidden, _, _ = flow.consent_form(page.content.decode())
        data = flow.consent_post(hidden, tenant=tenant, granted=granted, allow=allow)
        return self.browser.post("/oauth/authorize/?" + _query(params), data)

    def code_for(
        self, client_id: str, *, tenant: str, granted: list[str], scope: str = ""
    ) -> tuple[str, str]:
        verifier, params, page = self.authorize(client_id, scope=scope)
        assert page.status_code == 200, page.content[:2000]
        answer = self.consent(params, page, tenant=tenant, granted=granted)
        assert answer.status_code == 302, answer.content[:2000]
        query = flow.redirect_query(answer["Location"])
        assert query["state"] == params["state"]
        return query["code"], verifier

    def token(self, **data):
        return self.api.post("/oauth/token/", data)

    def tokens_for(self, client_id: str, *, tenant: str, granted: list[str]) -> dict:
        code, verifier = self.code_for(client_id, tenant=tenant, granted=granted)
        response = self.token(
            grant_type="authorization_code",
            code=code,
            redirect_uri=REDIRECT,
            client_id=client_id,
            code_verifier=verifier,
            resource=RESOURCE,
        )
        assert response.status_code == 200, response.content
        return response.json()


def _query(params: dict) -> str:
    from urllib.parse import urlencode

    return urlencode(params)


@pytest.fixture
def as_olga(olga):
    return InProcessFlow(olga)


@pytest.fixture
def as_root(root):
    return InProcessFlow(root)
