"""Fixtures for the resilience tests: the dummy upstream sandbox, a registry that includes the
dummy server, a tenant whose plan limits we set, and both state backends (Redis, process memory)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import pytest
from django.conf import settings
from django.test import override_settings

from askpro.models import Plan
from conftest import make_tenant
from mcp_core import breaker, ratelimit, shared_state
from mcp_core.api_keys import api_key_authenticate, api_key_create
from mcp_core.pipeline import reset_guards_for_tests
from mcp_core.registry import reset_registry_for_tests

from .dummy_upstream import DummySandbox

SERVERS = ["mcp_servers.database.server.DatabaseServer", "tests.resilience.dummy_upstream.DummyServer"]
GUARDS = ["mcp_core.ratelimit.RateLimitGuard", "mcp_core.breaker.BreakerGuard"]

# Small numbers so that the state machine runs in well under a second.
FAST_BREAKER = {
    "failure_rate_threshold": 50.0,
    "slow_call_rate_threshold": 100.0,
    "slow_call_duration": 10.0,
    "minimum_calls": 4,
    "window": 10.0,
    "open_duration": 0.5,
    "half_open_calls": 2,
    "half_open_max_wait": 5.0,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reset_resilience_state() -> None:
    ratelimit.reset_local_state_for_tests()
    breaker.reset_local_state_for_tests()
    shared_state.health.reset()
    reset_guards_for_tests()
    reset_registry_for_tests()


@pytest.fixture
def sandbox():
    server = DummySandbox().start()
    yield server
    server.stop()


@pytest.fixture(params=["redis", "local"])
def backend(request):
    """Run a test once with state in Redis and once in process memory (no Redis configured)."""
    if request.param == "redis":
        yield "redis"
        return
    caches = {
        **settings.CACHES,
        "resilience-local": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    with override_settings(CACHES=caches, MCP_RESILIENCE_CACHE="resilience-local"):
        yield "local"


@pytest.fixture
def dummy(sandbox):
    """The registry with the dummy server pointed at the sandbox, guards on, fast breakers."""
    reset_resilience_state()
    with override_settings(
        MCP_SERVERS=SERVERS,
        MCP_PIPELINE_GUARDS=GUARDS,
        DUMMY_UPSTREAM_URL=sandbox.url,
        MCP_BREAKERS={"default": FAST_BREAKER},
    ):
        yield sandbox
    reset_resilience_state()


def set_plan(tenant, *, per_minute: int, concurrency: int = 100, code: str = "limited") -> Plan:
    plan = Plan.objects.create(
        code=f"{code}-{tenant.pk}",
        name=code,
        requests_per_minute=per_minute,
        max_concurrent_calls=concurrency,
    )
    tenant.plan = plan
    tenant.save(update_fields=["plan"])
    ratelimit.clear_plan_cache()
    return plan


@pytest.fixture
def tenant(db):
    return make_tenant("res-tenant", name="Resilience tenant", phone="+4930555555")


@pytest.fixture
def principal(tenant):
    _, raw = api_key_create(name="res", scopes=["*"], tenant=tenant)
    return api_key_authenticate(raw)


@pytest.fixture
def raw_key(tenant):
    return api_key_create(name="res-http", scopes=["*"], tenant=tenant)[1]


class PrivateRedis:
    """A redis-server of our own on a free port (never the machine's shared one); stopped by pid."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError("private redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)


@pytest.fixture
def private_redis():
    server = PrivateRedis()
    yield server
    server.kill()
