"""The sandbox MCP Registry keeps the registry API's contract (reference/phase2-apis.md), and
the marketplace installs from it through the registry client."""

from __future__ import annotations

import pytest
import requests
from django.test import override_settings

from mcp_core.contracts import MCPError
from mcp_core.pipeline import call_operation
from mcp_core.registry import bump_registry_version
from mcp_servers.federation import services
from mcp_servers.federation.client import RegistryClient
from mcp_servers.federation.models import RemoteServer
from mcp_servers.federation.sandbox import OFFICIAL, RegistrySandbox

from .conftest import platform


@pytest.fixture(scope="module")
def registry():
    with RegistrySandbox() as sandbox:
        yield sandbox


def test_it_lists_servers_as_server_json_entries_with_official_meta(registry):
    body = requests.get(f"{registry.url}/v0.1/servers", timeout=5).json()
    assert body["metadata"]["count"] == len(body["servers"]) == 6
    entry = body["servers"][0]
    assert set(entry) == {"server", "_meta"}
    assert {"name", "description", "version"} <= set(entry["server"])
    assert entry["_meta"][OFFICIAL]["status"] == "active"


def test_it_pages_with_a_cursor_and_filters_by_search_and_latest(registry):
    first = requests.get(f"{registry.url}/v0.1/servers", params={"limit": 2}, timeout=5).json()
    assert len(first["servers"]) == 2 and first["metadata"]["nextCursor"]
    second = requests.get(
        f"{registry.url}/v0.1/servers",
        params={"limit": 2, "cursor": first["metadata"]["nextCursor"]},
        timeout=5,
    ).json()
    assert {e["server"]["name"] for e in second["servers"]}.isdisjoint(
        {e["server"]["name"] for e in first["servers"]}
    ) or second["servers"][0]["server"]["version"] != first["servers"][1]["server"]["version"]
    weather = requests.get(
        f"{registry.url}/v0.1/servers", params={"search": "weather", "version": "latest"}, timeout=5
    ).json()
    assert [e["server"]["version"] for e in weather["servers"]] == ["1.1.0"]


def test_it_serves_versions_and_one_version_by_url_encoded_name(registry):
    versions = requests.get(f"{registry.url}/v0.1/servers/io.example%2Fweather/versions", timeout=5).json()
    assert [e["server"]["version"] for e in versions["servers"]] == ["1.0.0", "1.1.0"]
    latest = requests.get(f"{registry.url}/v0.1/servers/io.example%2Fweather/versions/latest", timeout=5)
    assert latest.json()["server"]["version"] == "1.1.0"
    missing = requests.get(f"{registry.url}/v0.1/servers/io.example%2Fnope/versions/latest", timeout=5)
    assert missing.status_code == 404 and missing.json()["status"] == 404
    bad = requests.get(f"{registry.url}/v0.1/servers", params={"limit": 1000}, timeout=5)
    assert bad.status_code == 400


@pytest.mark.django_db
def test_it_installs_a_disabled_registration_from_a_registry_entry(registry):
    with override_settings(FEDERATION_REGISTRY_URL=registry.url):
        client = RegistryClient()
        found = client.search(search="weather")
        assert [e["server"]["name"] for e in found["servers"]] == ["io.example/weather"]
        server = services.install_from_registry(client.version("io.example/weather"))
        assert (server.slug, server.enabled, server.source) == ("weather", False, "marketplace")
        assert (
            server.url == registry.remotes.urls["io.example/weather"] and server.registry_version == "1.1.0"
        )
        with pytest.raises(MCPError) as twice:
            services.install_from_registry(client.version("io.example/weather"))
        assert twice.value.code == "conflict"
        with pytest.raises(MCPError) as local:
            services.install_from_registry(client.version("io.example/files"))
        assert local.value.code == "validation_error"
        with pytest.raises(MCPError) as unknown:
            client.version("io.example/nope")
        assert unknown.value.code == "not_found"
    assert RemoteServer.objects.count() == 1


@pytest.mark.parametrize("era", ["legacy", "2026-07-28"])
def test_it_serves_real_remote_servers_a_newcomer_can_install_approve_and_call(registry, tenants, era):
    """SANDBOX=1: install -> fetch tools -> approve -> enable -> call, against the sandbox's own
    remote MCP servers (every entry with a remote answers its tools)."""
    with override_settings(FEDERATION_REGISTRY_URL=registry.url):
        client = RegistryClient()
        for entry in client.search()["servers"]:
            if services.streamable_remote(entry):
                installed = services.install_from_registry(entry)
                installed.era = era
                installed.save()
                assert services.sync_tools(installed).new_versions >= 1, installed.slug
    weather = RemoteServer.objects.get(slug="weather")
    assert weather.url.startswith("http://127.0.0.1:")
    for tool in weather.tools.filter(status="pending"):
        services.approve_tool(tool)
    weather.enabled = weather.all_tenants = True
    weather.save()
    bump_registry_version()  # on_commit does not fire inside a test's transaction
    response = call_operation(
        "fed_weather", "forecast", {"city": "Köln", "days": 2}, principal=platform(), tenant="fed-a"
    )
    assert response.success, response.error
    assert response.data["city"] == "Köln" and [d["day"] for d in response.data["days"]] == [1, 2]
    again = call_operation(
        "fed_weather", "forecast", {"city": "Köln", "days": 2}, principal=platform(), tenant="fed-a"
    )
    assert again.data == response.data  # stable sandbox data
    bad = call_operation(
        "fed_weather", "forecast", {"city": "Köln", "days": 9}, principal=platform(), tenant="fed-a"
    )
    assert bad.error["code"] == "validation_error"
