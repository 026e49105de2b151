"""Webhook test helpers: platform secrets set per test, deliveries signed by the providers'
sandboxes, found like everything else of a provider through the registry (each declaration's
`sandbox_signer`), so that the webhooks app's tests import no other server either."""

from __future__ import annotations

import json
import secrets
import time
from datetime import timedelta as td
from typing import Any

import pytest
from django.utils import timezone
from django.utils.module_loading import import_string

from mcp_core.api_keys import api_key_authenticate
from mcp_core.pipeline import call_operation
from mcp_core.registry import get_registry
from mcp_core.tenancy import forget_tenant_secrets
from mcp_servers.webhooks.models import WebhookEvent

STRIPE_SECRET = "whsec_test_platform_secret"
CALCOM_SECRET = "calcom-platform-webhook-secret"
RETELL_KEY = "key_test_platform_retell"


@pytest.fixture(autouse=True)
def webhook_secrets(settings):
    settings.STRIPE_WEBHOOK_SECRET = STRIPE_SECRET
    settings.CALCOM_WEBHOOK_SECRET = CALCOM_SECRET
    settings.RETELL_API_KEY = RETELL_KEY
    settings.WEBHOOK_RETRY_BASE_SECONDS = 0.01
    settings.RETELL_DEFAULT_AGENT_ID = ""
    forget_tenant_secrets()
    yield
    forget_tenant_secrets()


def stripe_body(event_type: str, obj: dict[str, Any], **extra: Any) -> bytes:
    """A Stripe event envelope (reference/upstream-apis.md) around `obj`."""
    event = {
        "id": f"evt_{secrets.token_hex(12)}",
        "object": "event",
        "created": int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "type": event_type,
        **extra,
    }
    return json.dumps(event, separators=(",", ":")).encode()


def calcom_body(trigger: str, payload: dict[str, Any], created_at: str = "2026-11-26T10:00:00.000Z") -> bytes:
    return json.dumps({"triggerEvent": trigger, "createdAt": created_at, "payload": payload}).encode()


def retell_body(payload: dict[str, Any]) -> bytes:
    """Compact JSON, as Retell sends it."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def retell_call(call_id="call_abc", to="+4930111111", frm="+4915550001", **extra):
    """A Retell call object, as call_started carries it."""
    return {
        "call_id": call_id,
        "call_type": "phone_call",
        "agent_id": "agent_1",
        "agent_version": 1,
        "call_status": "ongoing",
        "direction": "inbound",
        "from_number": frm,
        "to_number": to,
        "start_timestamp": int(time.time() * 1000) - 60_000,
        **extra,
    }


def post(client, provider: str, body: bytes, headers: dict[str, str]):
    extra = {
        f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items() if k.lower() != "content-type"
    }
    return client.post(f"/webhooks/{provider}", data=body, content_type="application/json", **extra)


PLATFORM_SECRETS = {"stripe": STRIPE_SECRET, "calcom": CALCOM_SECRET, "retell": RETELL_KEY}


def signed(provider: str, body: bytes, secret: str | None = None, **kwargs: Any) -> dict[str, str]:
    """The headers the provider's sandbox signs `body` with (the platform secret by default)."""
    sign = import_string(get_registry().webhooks[provider].sandbox_signer)
    return sign(body, PLATFORM_SECRETS[provider] if secret is None else secret, **kwargs)


__all__ = ["calcom_body", "post", "retell_body", "retell_call", "signed", "stripe_body"]


from tests.celery_worker import celery_worker_factory  # noqa: E402, F401


def call_server(key, operation, params=None, tenant=None):
    return call_operation(
        "webhooks", operation, params or {}, principal=api_key_authenticate(key), tenant=tenant
    )


@pytest.fixture
def events(alice, bob):
    now = timezone.now()

    def make(provider, key, tenant, status, **extra):
        event = WebhookEvent.objects.create(
            provider=provider,
            event_id=key,
            idempotency_key=key,
            type=extra.pop("type", "invoice.paid"),
            tenant=tenant,
            payload={"id": key, "secret_looking": "no"},
            status=status,
            **extra,
        )
        return event

    return {
        "alice_ok": make("stripe", "evt_a1", alice, "processed", processed_at=now + td(milliseconds=40)),
        "alice_dead": make("calcom", "bk_a2", alice, "failed", type="BOOKING_CREATED", last_error="boom"),
        "bob_ok": make(
            "stripe", "evt_b1", bob, "processed", duplicate_count=2, processed_at=now + td(seconds=1)
        ),
        "orphan": make("retell", "call_x", None, "failed", type="call_started"),
    }
