"""Retell's webhooks as the sandbox sends them: the body, its signature
(`x-retell-signature: v=<ms>,d=<hex>`, what Retell's SDK verifier accepts), the payload per
event, and one delivery per call."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from typing import Any

import requests

from .sandbox_state import RetellState

SIGNATURE_HEADER = "x-retell-signature"


# --- webhook signing (what Retell's SDK verifier accepts) ---
def webhook_body(payload: dict[str, Any]) -> bytes:
    """Compact JSON with ensure_ascii=False: both the raw-body and the re-serialising
    verifiers of Retell's official samples accept a signature over these bytes."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def sign_webhook(body: bytes, api_key: str, timestamp_ms: int | None = None) -> dict[str, str]:
    """Headers of a signed delivery: `x-retell-signature: v=<ms>,d=<hex>` where the digest
    is HMAC-SHA256(key=api_key, msg=body + str(ms)) — the body first, no separator."""
    ts = int(time.time() * 1000) if timestamp_ms is None else int(timestamp_ms)
    digest = hmac.new(api_key.encode(), body + str(ts).encode(), hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", SIGNATURE_HEADER: f"v={ts},d={digest}"}


_STARTED_DROP = (
    "end_timestamp",
    "duration_ms",
    "transcript",
    "transcript_object",
    "transcript_with_tool_calls",
    "recording_url",
    "recording_multi_channel_url",
    "disconnection_reason",
    "call_analysis",
    "call_cost",
    "latency",
    "llm_token_usage",
)


def webhook_payload(event: str, call: dict[str, Any]) -> dict[str, Any]:
    """The body Retell posts for `event`: call_started carries the basic call, call_ended
    everything but call_analysis, call_analyzed the full call; call_inbound is the
    inbound-number webhook `{"event": "call_inbound", "call_inbound": {agent_id,
    agent_version, from_number, to_number}}` sent before the call is connected."""
    if event == "call_inbound":
        inbound = {key: call[key] for key in ("agent_id", "agent_version") if call.get(key) is not None}
        inbound |= {"from_number": call["from_number"], "to_number": call["to_number"]}
        return {"event": "call_inbound", "call_inbound": inbound}
    body = copy.deepcopy(call)
    if event == "call_started":
        for key in _STARTED_DROP:
            body.pop(key, None)
    elif event == "call_ended":
        body.pop("call_analysis", None)
    elif event != "call_analyzed":
        # transcript_updated, transfer_* ... carry the call as it is
        pass
    return {"event": event, "call": body}


class RetellWebhooks(RetellState):
    """Sending deliveries (mixed into RetellSandbox); each is logged in webhook_log."""

    def send_webhook(
        self,
        url: str,
        event: str,
        call: dict[str, Any] | str,
        api_key: str,
        *,
        timestamp_ms: int | None = None,
        timeout: float = 10.0,
    ) -> requests.Response:
        """POST a correctly signed delivery of `event` for `call` (a call dict or the id of a
        call in this sandbox) to `url`, as Retell does (10 s timeout, like webhook_timeout_ms)."""
        if isinstance(call, str):
            with self._state_lock:
                call = copy.deepcopy(self.calls[call])
        body = webhook_body(webhook_payload(event, call))
        headers = sign_webhook(body, api_key, timestamp_ms)
        response = requests.post(url, data=body, headers=headers, timeout=timeout)
        with self.lock:
            self.webhook_log.append({"url": url, "event": event, "status": response.status_code})
        return response
