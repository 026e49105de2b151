"""The hostile-input matrix of the OAuth entry points (issue 17): the well-known documents, the
registration, token and revocation endpoints, and the authorization endpoint and client pages a
signed-in person uses. Every input class — bytes that are not UTF-8, NUL, lone surrogates,
control characters, absurd lengths, nesting past REQUEST_MAX_JSON_DEPTH, bodies past
REQUEST_MAX_BODY_BYTES, JSON of the wrong type, numbers past any column — in every field each
endpoint reads. The machine endpoints answer a 4xx in OAuth's JSON error shape; the person's
pages a 4xx page or an error sent back to a registered client; never a 5xx, and nothing is
stored: no client, grant or token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote_from_bytes

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from oauth2_provider.models import AccessToken, Application, Grant, RefreshToken

from tests.oauth import flow

REDIRECT = "https://client.example/callback"

# One value per input class, as text; `raw` ones are bytes put into a body or query as they are.
TEXT_VALUES = {
    "NUL": "a\x00b",
    "control character": "a\x1bb",
    "absurd length": "a" * 20_000,
    "non-ASCII": "caf\u00e9 \u2603",
    "number past any column": str(2**80),
    "empty": "",
}
RAW_VALUES = {"not UTF-8": b"a\xff\xfeb", "lone surrogate (CESU bytes)": b"a\xed\xa0\x80b"}

# The entry points (the OAuth ones of the entry-point list) and the fields each reads.
OAUTH_ENTRIES = {
    "token": (
        "/oauth/token/",
        ["grant_type", "code", "client_id", "code_verifier", "redirect_uri", "resource"],
    ),
    "refresh": ("/oauth/token/", ["grant_type", "refresh_token", "client_id", "resource", "scope"]),
    "revoke": ("/oauth/revoke/", ["token", "token_type_hint", "client_id"]),
    "authorize": (
        "/oauth/authorize/",
        ["client_id", "redirect_uri", "response_type", "scope", "state", "code_challenge", "resource"],
    ),
}


@dataclass
class Case:
    entry: str
    klass: str
    field: str
    value: bytes

    @property
    def id(self) -> str:
        return f"{self.entry} {self.field}: {self.klass}"


def _cases() -> list[Case]:
    out = []
    for entry, (_, fields) in OAUTH_ENTRIES.items():
        for name in fields:
            for klass, text in TEXT_VALUES.items():
                out.append(Case(entry, klass, name, text.encode()))
            for klass, raw in RAW_VALUES.items():
                out.append(Case(entry, klass, name, raw))
    return out


CASES = _cases()


@pytest.fixture
def registered(db):
    app = Application.objects.create(
        name="matrix client",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=REDIRECT,
    )
    return app


@pytest.fixture
def person(db, client):
    user = get_user_model().objects.create_superuser("matrix", "m@example.com", "a-long-test-password-1")
    client.force_login(user)
    return client


def _valid(entry: str, client_id: str) -> dict[str, str]:
    _, challenge = flow.pkce()
    return {
        "token": {
            "grant_type": "authorization_code",
            "code": "x" * 30,
            "client_id": client_id,
            "code_verifier": "v" * 50,
            "redirect_uri": REDIRECT,
            "resource": "http://testserver/mcp",
        },
        "refresh": {"grant_type": "refresh_token", "refresh_token": "r" * 30, "client_id": client_id},
        "revoke": {"token": "t" * 30, "client_id": client_id},
        "authorize": flow.authorize_params(client_id, REDIRECT, challenge, resource="http://testserver/mcp"),
    }[entry]


def _encoded(fields: dict[str, str], name: str, value: bytes) -> str:
    parts = [
        f"{quote_from_bytes(k.encode())}={quote_from_bytes(v.encode())}"
        for k, v in fields.items()
        if k != name
    ]
    parts.append(f"{name}={quote_from_bytes(value)}")
    return "&".join(parts)


def _stored() -> tuple[int, int, int, int]:
    return (
        Application.objects.count(),
        Grant.objects.count(),
        AccessToken.objects.count(),
        RefreshToken.objects.count(),
    )


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_it_refuses_hostile_input_on_every_oauth_entry_point(case, registered, person, client):
    path, _ = OAUTH_ENTRIES[case.entry]
    before = _stored()
    body = _encoded(_valid(case.entry, registered.client_id), case.field, case.value)
    if case.entry == "authorize":
        response = person.get(f"{path}?{body}")
        # A person's page: an error page, or the error sent back to the registered client. The
        # state is the client's opaque value, echoed back: any printable text is the client's.
        opaque = case.field == "state" and case.klass not in ("NUL", "control character", "absurd length")
        allowed = (200, 302, 400) if opaque else (302, 400, 404)
        assert response.status_code in allowed, (response.status_code, response.content[:300])
        if response.status_code == 302:
            location = response["Location"]
            assert location.startswith(REDIRECT) and "error=" in location, location
    else:
        response = client.post(path, data=body, content_type="application/x-www-form-urlencoded")
        if case.entry == "revoke":
            # RFC 7009: an unknown token is answered 200 like a revoked one (nothing to learn).
            assert response.status_code in (200, 400, 401), (response.status_code, response.content[:300])
        else:
            assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
            assert "error" in json.loads(response.content)
    assert _stored() == before


REGISTRATION_BODIES = {
    "not UTF-8": b'{"client_name": "a\xff", "redirect_uris": ["https://c.example/cb"]}',
    "lone surrogate": b'{"client_name": "a\\ud800", "redirect_uris": ["https://c.example/cb"]}',
    "NUL in redirect": b'{"redirect_uris": ["https://c.example/cb\\u0000"]}',
    "nesting too deep": b'{"redirect_uris": ' + b"[" * 200 + b"]" * 200 + b"}",
    "top level array": b"[]",
    "top level string": b'"x"',
    "top level number": b"1e400",
    "top level null": b"null",
    "redirect_uris a string": b'{"redirect_uris": "https://c.example/cb"}',
    "redirect_uris numbers": b'{"redirect_uris": [1, 2]}',
    "javascript redirect": b'{"redirect_uris": ["javascript:alert(1)"]}',
    "redirect with fragment": b'{"redirect_uris": ["https://c.example/cb#x"]}',
    "grant types a string": b'{"redirect_uris": ["https://c.example/cb"], "grant_types": "authorization_code"}',
    "client credentials": b'{"redirect_uris": ["https://c.example/cb"], "grant_types": ["client_credentials"]}',
    "absurd client name": json.dumps(
        {"client_name": "n" * 50_000, "redirect_uris": ["https://c.example/cb"]}
    ).encode(),
    "not JSON": b"{nope",
    "empty": b"",
}


@pytest.mark.parametrize("body", REGISTRATION_BODIES.values(), ids=REGISTRATION_BODIES.keys())
def test_it_refuses_hostile_registrations(body, client, db):
    before = _stored()
    response = client.post("/oauth/register/", data=body, content_type="application/json")
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    assert "error" in json.loads(response.content)
    assert _stored() == before


def test_it_bounds_the_body_of_every_oauth_endpoint(client, db):
    limit = settings.REQUEST_MAX_BODY_BYTES
    for path in ("/oauth/token/", "/oauth/revoke/", "/oauth/register/"):
        response = client.post(
            path, data=b"a=" + b"b" * limit, content_type="application/x-www-form-urlencoded"
        )
        assert response.status_code == 413, path
        answer = response.json()
        assert answer["error"] == "invalid_request" and answer["limit"] == limit


@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/oauth-protected-resource/%00",
        "/.well-known/oauth-protected-resource/" + "a" * 5000,
        "/.well-known/oauth-protected-resource/mcp/%ED%A0%80",
        "/.well-known/oauth-authorization-server/%FF",
        "/oauth/clients/99999999999999999999999/revoke/",
        "/oauth/register/%00/",
    ],
)
def test_it_answers_hostile_paths_with_a_4xx(path, person):
    response = person.get(path)
    assert 400 <= response.status_code < 500, (path, response.status_code)
    assert person.post(path).status_code < 500


@pytest.mark.parametrize("label", ["NUL", "control character", "non-ASCII", "absurd length"])
def test_it_refuses_hostile_authorization_headers_on_the_token_endpoint(label, client, db):
    value = {
        "NUL": "a\x00b",
        "control character": "a\x1bb",
        "non-ASCII": "caf\u00e9",
        "absurd length": "a" * 5000,
    }
    response = client.post(
        "/oauth/token/",
        data="grant_type=refresh_token&refresh_token=x",
        content_type="application/x-www-form-urlencoded",
        headers={"Authorization": f"Basic {value[label]}"},
    )
    assert response.status_code == 400
    assert response.json()["field"] == "Authorization"
