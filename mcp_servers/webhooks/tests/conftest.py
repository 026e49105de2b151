"""Webhook test helpers: platform secrets set per test, deliveries signed by the providers'
sandboxes (mcp_servers.<provider>.sandbox.sign_webhook)."""

from __future__ import annotations

import json
from datetime import timedelta as td
from typing import Any

import pytest
from django.utils import timezone

from mcp_core.api_keys import api_key_authenticate
from mcp_core.pipeline import call_operation
from mcp_servers.calcom.sandbox import sign_webhook as calcom_sign
from mcp_servers.retell.sandbox import sign_webhook as retell_sign
from mcp_servers.retell.sandbox import webhook_body as retell_body
from mcp_servers.stripe.sandbox import make_event
from mcp_servers.stripe.sandbox import sign_webhook as stripe_sign
from mcp_servers.webhooks.models import WebhookEvent
from mcp_servers.webhooks.tenants import forget_tenant_secrets

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
    event = make_event(event_type, obj)
    event.update(extra)
    return json.dumps(event, separators=(",", ":")).encode()


def calcom_body(trigger: str, payload: dict[str, Any], created_at: str = "2026-11-26T10:00:00.000Z") -> bytes:
    return json.dumps({"triggerEvent": trigger, "createdAt": created_at, "payload": payload}).encode()


def post(client, provider: str, body: bytes, headers: dict[str, str]):
    extra = {
        f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items() if k.lower() != "content-type"
    }
    return client.post(f"/webhooks/{provider}", data=body, content_type="application/json", **extra)


def signed(provider: str, body: bytes, secret: str | None = None, **kwargs: Any) -> dict[str, str]:
    if provider == "stripe":
        return stripe_sign(body, secret or STRIPE_SECRET, **kwargs)
    if provider == "calcom":
        return calcom_sign(body, secret if secret is not None else CALCOM_SECRET)
    return retell_sign(body, secret or RETELL_KEY, **kwargs)


__all__ = ["calcom_body", "post", "retell_body", "signed", "stripe_body"]


from mcp_servers.queue.tests.celery_worker import celery_worker_factory  # noqa: E402, F401


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
