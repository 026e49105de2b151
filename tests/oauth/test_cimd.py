"""Fetching a client's metadata document: an outbound request bounded in size and time, cached
by its Cache-Control, never to private or link-local addresses (loopback only when allowed)."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings
from oauth2_provider.cimd import CIMDError
from oauth2_provider.models import Application

from mcp_core.oauth.cimd import MetadataFetcher

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.1/client.json",
        "https://192.168.1.10/client.json",
        "https://169.254.169.254/latest/meta-data",
        "https://[fe80::1]/client.json",
        "https://[::ffff:10.0.0.1]/client.json",
        "http://127.0.0.1/client.json",
        "https://127.0.0.1",
    ],
)
@override_settings(OAUTH_CIMD_ALLOW_LOOPBACK=True)
def test_it_never_fetches_from_private_or_link_local_addresses(url):
    with pytest.raises(CIMDError):
        MetadataFetcher().fetch(url)


def test_it_refuses_loopback_unless_the_setting_allows_it(documents, trusting_ca):
    client_id = documents.publish("/clients/loopback.json", ["https://client.example/cb"])
    with override_settings(OAUTH_CIMD_ALLOW_LOOPBACK=False), pytest.raises(CIMDError):
        MetadataFetcher().fetch(client_id)
    assert documents.fetches.get("/clients/loopback.json") is None  # refused before connecting
    with override_settings(OAUTH_CIMD_ALLOW_LOOPBACK=True):
        document, max_age = MetadataFetcher().fetch(client_id)
    assert document["client_id"] == client_id and max_age == 300


@override_settings(OAUTH_CIMD_ALLOW_LOOPBACK=True)
def test_it_takes_the_cache_lifetime_from_cache_control_within_bounds(documents, trusting_ca):
    long_lived = documents.publish("/clients/day.json", ["https://client.example/cb"], max_age=7200)
    short_lived = documents.publish("/clients/short.json", ["https://client.example/cb"], max_age=1)
    assert MetadataFetcher().fetch(long_lived)[1] == 7200
    assert MetadataFetcher().fetch(short_lived)[1] == 300  # the floor: no refetch storms


@override_settings(OAUTH_CIMD_ALLOW_LOOPBACK=True)
def test_it_refuses_a_document_over_the_size_bound(documents, trusting_ca):
    huge = documents.publish("/clients/huge.json", ["https://client.example/cb"], padding="x" * 40_000)
    with pytest.raises(CIMDError, match="size"):
        MetadataFetcher().fetch(huge)


@override_settings(OAUTH_CIMD_ALLOW_LOOPBACK=True)
def test_it_refuses_a_document_served_with_an_untrusted_certificate(documents):
    # SSL_CERT_FILE is not set here: the test CA is unknown.
    with pytest.raises(CIMDError, match="CERTIFICATE_VERIFY_FAILED"):
        MetadataFetcher().fetch(documents.publish("/clients/tls.json", ["https://client.example/cb"]))


@override_settings(OAUTH_CIMD_ALLOW_LOOPBACK=True, OAUTH_CIMD_TIMEOUT_SECONDS=0.5)
def test_it_gives_up_on_a_slow_document(documents, trusting_ca):
    slow = documents.publish("/clients/slow.json", ["https://client.example/cb"])
    documents.slow.add("/clients/slow.json")
    with pytest.raises(CIMDError):
        MetadataFetcher().fetch(slow)


@override_settings(OAUTH_CIMD_ALLOW_LOOPBACK=True)
def test_it_registers_a_client_from_its_document_on_first_sight(as_olga, documents, trusting_ca):
    client_id = documents.publish(
        "/clients/first.json", ["https://client.example/cimd"], client_name="Doc client"
    )
    _, params, page = as_olga.authorize(client_id, redirect_uri="https://client.example/cimd")
    assert page.status_code == 200
    assert "Doc client" in page.content.decode()
    app = Application.objects.get(client_id=client_id)
    assert app.registration_source == Application.RegistrationSource.CIMD
    assert app.client_type == Application.CLIENT_PUBLIC
    # A document naming another client_id than its own URL is refused.
    documents.documents["/clients/liar.json"] = (
        json.dumps({"client_id": client_id, "redirect_uris": ["https://client.example/cb"]}).encode(),
        {},
    )
    _, _, page = as_olga.authorize(
        documents.url("/clients/liar.json"), redirect_uri="https://client.example/cb"
    )
    assert page.status_code == 400
    assert not Application.objects.filter(client_id=documents.url("/clients/liar.json")).exists()
