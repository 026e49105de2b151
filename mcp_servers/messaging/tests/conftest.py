"""A live Twilio sandbox per test module and two tenants with their own Twilio accounts.

Status callbacks and inbound messages from the sandbox are routed into Django's test client
(`sink`), so they go through the real webhook endpoint, its signature check and its queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from askpro.models import Company
from mcp_core.api_keys import api_key_authenticate
from mcp_core.contracts import MCPResponse
from mcp_core.pipeline import call_operation
from mcp_servers.messaging.models import MessagingAccount
from mcp_servers.messaging.sandbox import TwilioSandbox

ALICE_SENDER = "+4930111111"
BOB_SENDER = "+4940222222"
CUSTOMER = "+4915112345678"  # a German mobile number
CUSTOMER_NATIONAL = "0151 12345678"


@pytest.fixture(scope="module")
def sandbox():
    server = TwilioSandbox(demo=False).start()
    yield server
    server.stop()


@pytest.fixture
def twilio(sandbox, settings) -> TwilioSandbox:
    sandbox.reset()
    sandbox.sink = None
    settings.TWILIO_API_BASE = sandbox.url
    settings.MESSAGING_PUBLIC_URL = "https://askpro.example.com"
    return sandbox


def add_account(sandbox: TwilioSandbox, company: Company, sender: str, **extra: Any) -> MessagingAccount:
    sid, token = sandbox.add_account(friendly_name=f"{company.name} account")
    return MessagingAccount.objects.create(
        company=company,
        account_sid=sid,
        auth_token=token,
        sender=sender,
        whatsapp_sender=sender,
        quiet_hours_start=None,
        quiet_hours_end=None,
        **extra,
    )


@dataclass
class World:
    sandbox: TwilioSandbox
    alice: Company
    bob: Company
    alice_key: str
    bob_key: str
    alice_account: MessagingAccount
    bob_account: MessagingAccount

    def call(self, operation: str, params: dict[str, Any] | None = None, *, key: str | None = None,
             idempotency_key: str | None = None) -> MCPResponse:  # fmt: skip
        principal = api_key_authenticate(key or self.alice_key)
        return call_operation(
            "messaging", operation, params or {}, principal=principal, idempotency_key=idempotency_key
        )


@pytest.fixture
def world(twilio, alice, bob, alice_key, bob_key) -> World:
    return World(
        twilio,
        alice,
        bob,
        alice_key,
        bob_key,
        add_account(twilio, alice, ALICE_SENDER),
        add_account(twilio, bob, BOB_SENDER),
    )
