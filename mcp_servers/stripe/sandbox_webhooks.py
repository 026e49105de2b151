"""Events and webhooks of the Stripe sandbox: signing, event envelopes (also used by tests and
benches to build deliveries), recording each account's events, sending them to webhook
endpoints, and /v1/events."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from typing import Any

import requests

from mcp_core.sandbox import SandboxRequest, route

from .sandbox_api import StripeApi, retrieve_route, stripe_call
from .sandbox_state import API_VERSION, Account, new_id, seq

__all__ = ["API_VERSION", "StripeWebhooks", "make_event", "sign_webhook"]


def sign_webhook(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Headers for a webhook delivery: `Stripe-Signature: t=<unix s>,v1=<hex HMAC-SHA256>`,
    computed over `f"{t}.{body}"` with the whole `whsec_...` string as the key."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    signed = f"{t}.".encode() + body
    signature = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={t},v1={signature}", "Content-Type": "application/json; charset=utf-8"}


def make_event(event_type: str, data_object: dict[str, Any], *, previous: dict | None = None) -> dict:
    """An event envelope as Stripe sends it."""
    data: dict[str, Any] = {"object": data_object}
    if previous:
        data["previous_attributes"] = previous
    return {
        "id": new_id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": int(time.time()),
        "data": data,
        "livemode": bool(data_object.get("livemode", False)),
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


class StripeWebhooks(StripeApi):
    """Every event an account records, sent to the registered endpoints; /v1/events."""

    webhook_endpoints: list[tuple[str, str]]  # (url, secret): every event is sent
    sent_webhooks: list[dict[str, Any]]

    # --- webhooks ---
    def send_webhook(
        self, url: str, event_type: str, data_object: dict[str, Any], secret: str, *, timeout: float = 5.0
    ) -> requests.Response:
        """POST a correctly signed event to `url`, as Stripe delivers it."""
        return self.deliver_event(url, make_event(event_type, data_object), secret, timeout=timeout)

    def deliver_event(
        self, url: str, event: dict[str, Any], secret: str, *, timeout: float = 5.0
    ) -> requests.Response:
        body = json.dumps(event, separators=(",", ":")).encode()
        headers = {
            **sign_webhook(body, secret),
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
        response = requests.post(url, data=body, headers=headers, timeout=timeout)
        with self.lock:
            self.sent_webhooks.append({"url": url, "event": event, "status": response.status_code})
        return response

    def add_webhook_endpoint(self, url: str, secret: str) -> None:
        """From now on every event the sandbox records is also delivered to `url` (in a thread)."""
        with self.lock:
            self.webhook_endpoints.append((url, secret))

    def _emit(self, account: Account, event_type: str, obj: dict[str, Any]) -> None:
        event = make_event(event_type, json.loads(json.dumps(obj)))
        account.events.append(event)
        account.table("event")[event["id"]] = event | {"seq": next(seq)}
        for url, secret in list(self.webhook_endpoints):
            threading.Thread(target=self._deliver_quietly, args=(url, event, secret), daemon=True).start()

    def _deliver_quietly(self, url: str, event: dict[str, Any], secret: str) -> None:
        try:
            self.deliver_event(url, event, secret)
        except requests.RequestException:
            with self.lock:
                self.sent_webhooks.append({"url": url, "event": event, "status": None})

    # --- events ---
    event_retrieve = retrieve_route("/v1/events/(?P<id>evt_[^/]+)", "event")

    @route("GET", "/v1/events")
    @stripe_call
    def event_list(self, account: Account, params: dict[str, Any], _: SandboxRequest) -> tuple[int, Any]:
        kind = params.get("type")
        return self._list(
            account,
            "event",
            params,
            "/v1/events",
            {"type", "types"},
            lambda o: not kind or o["type"] == kind,
        )
