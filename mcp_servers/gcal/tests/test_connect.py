"""The admin's "connect Google Calendar": Google's authorization-code flow against the
sandbox's consent page and token endpoint; the refresh token ends up encrypted on the tenant."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from mcp_servers.gcal.models import GoogleAccount

from .conftest import ALICE_USER

pytestmark = pytest.mark.django_db


def consent(admin_client, company) -> str:
    """Start the flow in the admin (on the tenant's account row, made first with its company);
    the sandbox's consent page sends back to the callback."""
    row, _ = GoogleAccount.objects.get_or_create(company=company)
    start = admin_client.get(f"/admin/mcp_gcal/googleaccount/{row.pk}/connect/")
    assert start.status_code == 302
    to_google = urlsplit(start["Location"])
    query = parse_qs(to_google.query)
    assert query["access_type"] == ["offline"] and query["prompt"] == ["consent"]
    assert query["redirect_uri"] == ["http://testserver/admin/mcp_gcal/googleaccount/callback/"]
    back = requests.get(start["Location"], allow_redirects=False, timeout=5)
    assert back.status_code == 302
    parts = urlsplit(back.headers["Location"])
    return f"{parts.path}?{parts.query}"


def test_it_connects_a_tenant_and_stores_the_refresh_token_encrypted(google, admin_client, alice, alice_key):
    google.state.add_user(ALICE_USER)
    done = admin_client.get(consent(admin_client, alice))
    row = GoogleAccount.objects.get(company=alice)
    assert done.status_code == 302 and done["Location"].endswith(f"/googleaccount/{row.pk}/change/")
    assert row.mode == "oauth" and google.state.refresh_tokens[row.refresh_token] == ALICE_USER
    assert row.connected_as == ALICE_USER
    from mcp_core.api_keys import api_key_authenticate
    from mcp_core.pipeline import call_operation

    answer = call_operation("gcal", "test_connection", {}, principal=api_key_authenticate(alice_key))
    assert answer.success and answer.data["connected_as"] == ALICE_USER


def test_it_refuses_a_callback_with_a_forged_state_or_from_another_session(
    google, admin_client, client, alice, django_user_model
):
    google.state.add_user(ALICE_USER)
    callback = consent(admin_client, alice)
    forged = callback.replace("state=", "state=x")
    assert admin_client.get(forged).status_code == 302 and not GoogleAccount.objects.get().refresh_token
    other = django_user_model.objects.create_superuser("other", "o@example.com", "pw-other-123")
    client.force_login(other)
    assert client.get(callback).status_code == 302  # a state started in another session
    assert not GoogleAccount.objects.get().refresh_token


def test_it_refuses_to_start_without_the_platforms_oauth_client(google, admin_client, alice, settings):
    settings.GCAL_OAUTH_CLIENT_SECRET = ""
    row = GoogleAccount.objects.create(company=alice)
    answer = admin_client.get(f"/admin/mcp_gcal/googleaccount/{row.pk}/connect/")
    assert answer.status_code == 302 and answer["Location"].endswith("/admin/mcp_gcal/googleaccount/")
