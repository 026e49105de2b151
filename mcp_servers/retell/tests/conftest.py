"""A live RetellSandbox per test module, pointed at by the settings, and a small two-tenant world.

Alice (company agent `agent_alice`, branch Main's agent `agent_alice_main`, number +4930111111)
and Bob (company agent `agent_bob`, number +4940222222) share the platform Retell key, as
tenants without their own workspace do — so every answer must be filtered to the tenant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from askpro.models import Company
from mcp_core.api_keys import api_key_authenticate
from mcp_core.contracts import MCPResponse
from mcp_core.pipeline import call_operation
from mcp_servers.retell.client import reset_generation_cache_for_tests
from mcp_servers.retell.sandbox import RetellSandbox

PLATFORM_KEY = "key_platform_0123456789abcdef"
ALICE_OWN_KEY = "key_alice_own_0123456789abcdef"
VALID_PROMPT = (
    "Begrüßung: Begrüße jeden Anrufer freundlich im Namen des Salons und nenne deinen Namen. "
    "Service: Beantworte Fragen zu unseren Leistungen und Preisen, ehrlich und kurz. "
    "Termin: Buche, verschiebe oder storniere Termine für {{customer_name}} über Cal.com."
)


@pytest.fixture(scope="module")
def sandbox():
    server = RetellSandbox(seed=False, api_keys=[PLATFORM_KEY, ALICE_OWN_KEY]).start()
    yield server
    server.stop()


@pytest.fixture
def retell(sandbox, settings) -> RetellSandbox:
    """The module's sandbox, emptied, with the platform key and base URL pointing at it."""
    sandbox.reset()
    reset_generation_cache_for_tests()
    settings.RETELL_BASE_URL = sandbox.url
    settings.RETELL_API_KEY = PLATFORM_KEY
    return sandbox


@dataclass
class World:
    retell: RetellSandbox
    alice: Company
    bob: Company
    alice_key: str
    bob_key: str
    alice_calls: list[dict[str, Any]]
    bob_calls: list[dict[str, Any]]

    def call(
        self, operation: str, params: dict[str, Any] | None = None, *, key: str | None = None
    ) -> MCPResponse:
        principal = api_key_authenticate(key or self.alice_key)
        return call_operation("retell", operation, params or {}, principal=principal)


@pytest.fixture
def world(retell, alice, bob, alice_key, bob_key) -> World:
    alice.retell_agent_id = "agent_alice"
    alice.save(update_fields=["retell_agent_id"])
    alice.branches.filter(slug="main").update(retell_agent_id="agent_alice_main")
    bob.retell_agent_id = "agent_bob"
    bob.save(update_fields=["retell_agent_id"])
    retell.add_agent("agent_alice", agent_name="Alice front desk", prompt="Alte Begrüßung")
    retell.add_agent("agent_alice_main", agent_name="Alice Main branch")
    retell.add_agent("agent_bob", agent_name="Bob front desk")
    retell.add_phone_number("+4930111111", inbound_agent_id="agent_alice_main", nickname="Main")
    retell.add_phone_number("+4940222222", inbound_agent_id="agent_bob")
    hour = 3_600_000
    base = retell_now_ms() - 10 * hour
    alice_calls = [
        retell.add_call(
            agent_id="agent_alice_main",
            from_number=f"+4917600000{i}",
            to_number="+4930111111",
            start_timestamp=base + i * hour,
            duration_ms=61_400 + i,
            combined_cost=12.5 + i,
            call_summary=f"Alice caller {i} booked a haircut",
        )
        for i in range(3)
    ]
    alice_calls.append(
        retell.add_call(
            agent_id="agent_alice_main",
            from_number="+49176000009",
            to_number="+4930111111",
            call_status="ongoing",
            start_timestamp=base + 5 * hour,
        )
    )
    bob_calls = [
        retell.add_call(
            agent_id="agent_bob",
            from_number=f"+4917700000{i}",
            to_number="+4940222222",
            start_timestamp=base + i * hour,
            call_summary="Bob caller asked for a massage",
        )
        for i in range(2)
    ]
    return World(retell, alice, bob, alice_key, bob_key, alice_calls, bob_calls)


def retell_now_ms() -> int:
    import time

    return int(time.time() * 1000)
