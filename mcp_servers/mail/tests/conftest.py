"""A live SMTP sandbox per test module and two tenants with their own SMTP accounts on it.

Tracking webhooks from the sandbox are routed into Django's test client (`sink`), so they go
through the real webhook endpoint, its basic-auth check and its queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from askpro.models import Appointment, Company, Customer
from mcp_core.api_keys import api_key_authenticate
from mcp_core.contracts import MCPResponse
from mcp_core.pipeline import call_operation
from mcp_servers.mail.models import EmailAccount
from mcp_servers.mail.sandbox import SmtpSandbox


@pytest.fixture(scope="module")
def sandbox():
    server = SmtpSandbox(demo=False).start()
    yield server
    server.stop()


@pytest.fixture
def smtp(sandbox) -> SmtpSandbox:
    sandbox.reset()
    sandbox.sink = None
    return sandbox


def add_account(sandbox: SmtpSandbox, company: Company, sender: str, **extra: Any) -> EmailAccount:
    username, password = sandbox.add_account()
    return EmailAccount.objects.create(
        company=company,
        smtp_host=sandbox.host,
        smtp_port=sandbox.port,
        smtp_security="none",
        smtp_username=username,
        smtp_password=password,
        from_email=sender,
        from_name=f"{company.name} Team",
        reply_to=f"hello@{company.slug}.example",
        webhook_secret=f"postmark:{company.slug}-hook-secret",
        **extra,
    )


@dataclass
class World:
    sandbox: SmtpSandbox
    alice: Company
    bob: Company
    alice_key: str
    bob_key: str
    alice_account: EmailAccount
    bob_account: EmailAccount

    @property
    def appointment(self) -> Appointment:
        return Appointment.objects.filter(company=self.alice).order_by("pk").first()

    @property
    def customer(self) -> Customer:
        return Customer.objects.filter(company=self.alice).first()

    def call(self, operation: str, params: dict[str, Any] | None = None, *, key: str | None = None,
             idempotency_key: str | None = None) -> MCPResponse:  # fmt: skip
        principal = api_key_authenticate(key or self.alice_key)
        return call_operation(
            "email", operation, params or {}, principal=principal, idempotency_key=idempotency_key
        )


@pytest.fixture
def world(smtp, alice, bob, alice_key, bob_key) -> World:
    return World(
        smtp,
        alice,
        bob,
        alice_key,
        bob_key,
        add_account(smtp, alice, "termine@alice-salon.example"),
        add_account(smtp, bob, "praxis@bob-practice.example"),
    )
