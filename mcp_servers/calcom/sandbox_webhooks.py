"""Cal.com's webhooks as the sandbox sends them: the signature header (hex HMAC-SHA256 of the
raw body, no prefix, no timestamp), the booking payload, and one delivery per call."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from typing import Any

import requests

from .sandbox_state import CalcomState, iso


def sign_webhook(body: bytes, secret: str) -> dict[str, str]:
    """The headers Cal.com sends with a webhook delivery of `body` signed with `secret`.

    The signature is hex(HMAC-SHA256(secret, raw body)), no prefix and no timestamp; a
    webhook without a secret carries the literal "no-secret-provided" (receivers must
    treat that as invalid).
    """
    signature = (
        hmac.new(secret.encode(), body, hashlib.sha256).hexdigest() if secret else "no-secret-provided"
    )
    return {
        "Content-Type": "application/json",
        "X-Cal-Signature-256": signature,
        "X-Cal-Webhook-Version": "2021-10-20",
    }


class CalcomWebhooks(CalcomState):
    """Sending deliveries (mixed into CalcomSandbox); each is logged in webhook_deliveries."""

    webhook_deliveries: list[dict[str, Any]]

    def send_webhook(
        self, url: str, trigger_event: str, payload: dict[str, Any], secret: str, *, timeout: float = 5.0
    ) -> int:
        """POST one delivery to `url` the way Cal.com does; returns the receiver's status."""
        body = json.dumps(
            {"triggerEvent": trigger_event, "createdAt": iso(dt.datetime.now(dt.UTC)), "payload": payload}
        ).encode()
        if not url.startswith(("http://", "https://")):
            raise ValueError("webhook url must be http(s)")
        # A fresh connection per delivery, like Cal.com's fetch: no pooled state between tests.
        status = requests.post(
            url, data=body, headers=sign_webhook(body, secret), timeout=timeout
        ).status_code
        with self.lock:
            self.webhook_deliveries.append({"url": url, "triggerEvent": trigger_event, "status": status})
        return status

    def webhook_payload(self, booking: dict[str, Any]) -> dict[str, Any]:
        """A booking as a webhook payload (upper-case status, startTime/endTime)."""
        event_type = self.event_types.get(booking["eventTypeId"], {})
        host = booking["hosts"][0] if booking["hosts"] else {}
        return {
            "bookingId": booking["id"],
            "uid": booking["uid"],
            "title": booking["title"],
            "type": event_type.get("slug", ""),
            "eventTypeId": booking["eventTypeId"],
            "startTime": booking["start"],
            "endTime": booking["end"],
            "length": booking["duration"],
            "status": booking["status"].upper(),
            "organizer": {k: host.get(k) for k in ("id", "name", "email", "username", "timeZone")},
            "attendees": [
                {
                    "name": a["name"],
                    "email": a["email"],
                    "timeZone": a["timeZone"],
                    "language": {"locale": "en"},
                }
                for a in booking["attendees"]
            ],
            "location": booking["location"],
            "description": booking["description"],
            "responses": booking["bookingFieldsResponses"],
            "metadata": booking["metadata"],
            "cancellationReason": booking.get("cancellationReason"),
            "rescheduleReason": booking.get("reschedulingReason"),
        }
