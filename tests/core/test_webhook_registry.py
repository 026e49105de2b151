"""Inbound webhooks are declared by the server that receives them (mcp_core.webhooks) and found
through the registry: a new provider is taken at /webhooks/<provider> without any change to
the webhooks app, and each declaration mistake stops `manage.py check`."""

from __future__ import annotations

import json

import pytest

from mcp_core.checks import check_registry
from mcp_core.registry import build_registry, get_registry, reset_registry_for_tests
from mcp_servers.webhooks.models import RejectedDelivery, WebhookEvent
from tests.dummy_server.webhooks import sign_webhook

DB = "mcp_servers.database.server.DatabaseServer"
STRIPE = "mcp_servers.stripe.server.StripeServer"
DUMMY = "tests.dummy_server.servers"


def test_it_collects_the_webhooks_each_server_declares():
    registry = build_registry([DB, STRIPE, f"{DUMMY}.EchoWebhookServer"])
    assert sorted(registry.webhooks) == ["echohook", "stripe"]
    echo = registry.get_webhook("echohook")
    assert (echo.service, echo.signature_header, echo.handle(None)) == (
        "echowebhook",
        "X-Echo-Signature",
        "echoed",
    )
    assert registry.get_webhook("calcom") is None  # its server is not registered here
    with pytest.raises(TypeError):
        registry.webhooks["intruder"] = echo


@pytest.mark.parametrize(
    ("server", "words"),
    [
        (
            "StripeAgainWebhookServer",
            "webhook provider 'stripe' is declared twice ('stripe' and 'stripeagain')",
        ),
        ("NoDeclarationWebhookServer", "declares no @webhook"),
        ("BadProviderWebhookServer", "needs a lower-case identifier of at most 10 characters"),
        ("MissingWebhooksModuleServer", "cannot be imported"),
    ],
)
def test_it_stops_the_system_check_on_a_bad_webhook_declaration(server, words, settings):
    settings.MCP_SERVERS = [DB, STRIPE, f"{DUMMY}.{server}"]
    errors = check_registry(None)
    assert [e.id for e in errors] == ["mcp.E001"]
    assert words in errors[0].msg


@pytest.fixture
def echo_registry(settings):
    """The real servers plus one that receives the `echohook` provider's webhooks."""
    settings.MCP_SERVERS = [*settings.MCP_SERVERS, f"{DUMMY}.EchoWebhookServer"]
    settings.STRIPE_WEBHOOK_SECRET = "echo-secret"  # the echo declaration's platform setting
    reset_registry_for_tests()
    yield get_registry()
    reset_registry_for_tests()


@pytest.mark.django_db
def test_it_takes_a_newly_declared_webhook_provider_through_the_one_ingestion_path(
    echo_registry, client, django_capture_on_commit_callbacks
):
    body = json.dumps({"id": "e1"}).encode()
    headers = sign_webhook(body, "echo-secret")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/webhooks/echohook?via=test", data=body, content_type="application/json", headers=headers
        )
    assert (response.status_code, response.json()["status"]) == (202, "received")
    event = WebhookEvent.objects.get()
    assert (event.provider, event.event_id, event.status, event.result) == (
        "echohook",
        "e1",
        "processed",
        "echoed",
    )
    assert event.payload == {"id": "e1", "seen_url": "http://testserver/webhooks/echohook?via=test"}
    again = client.post("/webhooks/echohook", data=body, content_type="application/json", headers=headers)
    assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    forged = client.post(
        "/webhooks/echohook", data=body, content_type="application/json", headers=sign_webhook(body, "wrong")
    )
    assert forged.status_code == 401
    assert list(RejectedDelivery.objects.values_list("provider", "reason")) == [("echohook", "bad_signature")]


@pytest.mark.django_db
def test_it_bounds_a_declared_webhook_signature_header_at_the_door(echo_registry, client):
    """The declaration's signature_max_chars (64 here) is enforced by the request limits."""
    response = client.post(
        "/webhooks/echohook",
        data=b"{}",
        content_type="application/json",
        headers={"X-Echo-Signature": "a" * 65},
    )
    assert response.status_code == 400
    assert response.json()["field"] == "X-Echo-Signature"
    assert not RejectedDelivery.objects.exists()


@pytest.mark.django_db
def test_it_answers_404_for_a_webhook_provider_no_server_declares(client):
    for path in ("/webhooks/echohook", "/webhooks/twilio", "/webhooks/handlers"):
        assert client.post(path, data=b"{}", content_type="application/json").status_code == 404
    assert not WebhookEvent.objects.exists() and not RejectedDelivery.objects.exists()
