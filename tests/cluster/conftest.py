"""Helpers of the cluster tests that touch this run's test database (tenants, keys, webhooks)."""

from __future__ import annotations

import time
import uuid

from django.db import connection

from conftest import make_tenant
from mcp_core.api_keys import api_key_create
from mcp_servers.retell.sandbox import sign_webhook, webhook_body
from mcp_servers.webhooks.models import WebhookEvent
from tests.resilience.conftest import set_plan

from .group import wait_for

RETELL_KEY = "key_cluster_platform_retell"


def database_url() -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def unique_phone() -> str:
    return f"+4930{uuid.uuid4().int % 10**8:08d}"


def tenant_key(slug: str, *, per_minute: int = 100_000) -> tuple[object, str]:
    tenant = make_tenant(f"{slug}-{uuid.uuid4().hex[:6]}", phone=unique_phone())
    set_plan(tenant, per_minute=per_minute, code=slug)
    return tenant, api_key_create(name=slug, scopes=["*"], tenant=tenant)[1]


def retell_delivery(call_id: str) -> tuple[bytes, dict[str, str]]:
    payload = {
        "event": "call_started",
        "call": {
            "call_id": call_id,
            "call_type": "phone_call",
            "agent_id": "agent_1",
            "call_status": "ongoing",
            "direction": "inbound",
            "from_number": "+4915550001",
            "to_number": "+4930111111",
            "start_timestamp": int(time.time() * 1000) - 60_000,
        },
    }
    body = webhook_body(payload)
    return body, sign_webhook(body, RETELL_KEY)


def processed(call_id: str, timeout: float = 45) -> WebhookEvent:
    return wait_for(
        lambda: WebhookEvent.objects.filter(
            idempotency_key=f"call_started:{call_id}", status="processed"
        ).first(),
        timeout,
        f"webhook call_started:{call_id} processed by a worker",
        interval=0.2,
    )
