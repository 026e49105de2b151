"""The steps of an MCP client's OAuth flow, as plain HTTP, for the Django test client and for
httpx against a live server: PKCE, registration, the consent form, the token endpoint."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlsplit

from bs4 import BeautifulSoup


def pkce() -> tuple[str, str]:
    """(verifier, S256 challenge)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def registration(redirect_uri: str, **extra) -> dict:
    return {
        "client_name": "Test MCP client",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        **extra,
    }


def authorize_params(client_id: str, redirect_uri: str, challenge: str, **extra) -> dict:
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": secrets.token_urlsafe(16),
        **extra,
    }


def consent_form(html: str) -> tuple[dict, list[str], list[str]]:
    """The consent form's hidden fields, tenant choices and scope choices."""
    form = BeautifulSoup(html, "html.parser").find("form", id="authorizationForm")
    assert form is not None, html[:2000]
    hidden = {i["name"]: i.get("value", "") for i in form.find_all("input", type="hidden")}
    tenants = [o.get("value", "") for o in form.find("select", attrs={"name": "tenant"}).find_all("option")]
    granted = [i["value"] for i in form.find_all("input", attrs={"name": "granted"})]
    return hidden, tenants, granted


def consent_post(hidden: dict, *, tenant: str, granted: list[str], allow: bool = True) -> dict:
    data = {**hidden, "tenant": tenant, "granted": granted}
    if allow:
        data["allow"] = "Allow"
    return data


def redirect_query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
