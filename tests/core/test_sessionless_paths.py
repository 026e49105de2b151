"""The machine endpoints skip the session, user and messages middleware: a logged-in admin's
session cookie counts for nothing there, and they never set or vary on cookies. The admin
keeps its sessions."""

from __future__ import annotations

import json

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def test_it_does_not_authenticate_mcp_with_a_session(logged_in):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    response = logged_in.post(
        "/mcp",
        json.dumps(body),
        content_type="application/json",
        headers={"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"},
    )
    assert response.status_code == 401
    assert response.cookies == {}
    assert "Cookie" not in response.get("Vary", "")
    assert not hasattr(response.wsgi_request, "session")
    assert not hasattr(response.wsgi_request, "user")


def test_it_does_not_authenticate_the_api_with_a_session(logged_in, platform_key):
    refused = logged_in.get("/api/v1/mcp/services")
    assert refused.status_code == 401
    answered = logged_in.get("/api/v1/mcp/services", headers={"Authorization": f"Bearer {platform_key}"})
    assert answered.status_code == 200
    assert answered.cookies == {}
    assert not hasattr(answered.wsgi_request, "session")


def test_it_keeps_the_admins_session_user_and_messages(logged_in):
    response = logged_in.get("/admin/")
    assert response.status_code == 200
    assert response.wsgi_request.user.is_superuser
    assert hasattr(response.wsgi_request, "_messages")
    assert Client().get("/admin/").status_code == 302  # no session, no admin
