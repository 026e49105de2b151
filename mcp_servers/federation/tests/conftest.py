"""Real remote MCP servers (the official SDK's server under uvicorn on 127.0.0.1) for the
federation tests, and registrations pointing at them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest
from django.test import override_settings

from askpro.models import Company
from mcp_core.contracts import Principal
from mcp_core.registry import bump_registry_version
from mcp_servers.federation import services
from mcp_servers.federation.models import RemoteServer
from mcp_servers.federation.pool import session_pool

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "fed-test-bearer-token-7f3a"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Remote:
    """One remote server process; stopped by its pid."""

    def __init__(self, mode: str = "normal", port: int | None = None, **env: str) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "mcp_servers.federation.tests.remote_app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env={**os.environ, "FED_REMOTE_MODE": mode, "FED_REMOTE_TOKEN": TOKEN, **env},
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the remote MCP server did not start")

    def mutate(self) -> None:
        httpx2.post(f"http://127.0.0.1:{self.port}/__mutate").raise_for_status()

    def stats(self) -> dict[str, int]:
        return httpx2.get(f"http://127.0.0.1:{self.port}/__stats").json()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def remote():
    server = Remote("normal", FED_REMOTE_SLEEP="3600", FED_REMOTE_BIG_BYTES=str(2 * 1024 * 1024))
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def loopback_allowed():
    # The test servers listen on 127.0.0.1, which production refuses.
    with override_settings(FEDERATION_ALLOWED_NETWORKS=["127.0.0.0/8"]):
        yield


@pytest.fixture(autouse=True)
def fresh_registry():
    """Federated services come from rows a test rolls back: every test starts and ends with a
    registry rebuilt from what is committed."""
    bump_registry_version()
    yield
    bump_registry_version()


@pytest.fixture(autouse=True)
def closed_sessions():
    """Kept remote sessions belong to one test: registrations roll back, servers stop."""
    yield
    session_pool().close_all()


@pytest.fixture
def tenants(db):
    a = Company.objects.create(name="Fed A", slug="fed-a")
    b = Company.objects.create(name="Fed B", slug="fed-b")
    return a, b


def register(url: str, *, slug: str = "demo", era: str = "legacy", token: str = "", approve=True, **fields):
    """A registration, synced, with every tool approved (as an operator would) and enabled."""
    fields.setdefault("all_tenants", True)
    server = RemoteServer.objects.create(
        slug=slug, title=f"Remote {slug}", url=url, era=era, bearer_token=token, enabled=True, **fields
    )
    services.sync_tools(server)
    if approve:
        for tool in server.tools.filter(status="pending"):
            services.approve_tool(tool)
    bump_registry_version()  # on_commit does not fire inside a test's transaction
    return server


def platform(*scopes: str) -> Principal:
    return Principal(kind="api_key", name="key:fed-platform", scopes=frozenset(scopes or {"*"}))


def tenant_key(company: Company, *scopes: str) -> Principal:
    return Principal(
        kind="api_key", name=f"key:{company.slug}", scopes=frozenset(scopes or {"*"}), tenant_id=company.pk
    )
