"""Contract tests on the RetellSandbox itself: it refuses what Retell refuses and signs webhooks
the way Retell's SDK verifies them (checked here by an independent verifier)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from mcp_servers.retell.sandbox import (
    DEMO_API_KEY,
    SANDBOX_CLASS,
    RetellSandbox,
    sign_webhook,
    webhook_payload,
)

KEY = "key_contract_0123456789abcdef"


@pytest.fixture(scope="module")
def box():
    server = RetellSandbox(seed=False, api_keys=[KEY]).start()
    yield server
    server.stop()


@pytest.fixture
def api(box):
    box.reset()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {KEY}"
    agent = box.add_agent("agent_a", prompt="p")
    box.add_phone_number("+4930111111", inbound_agent_id="agent_a")
    for i in range(5):
        box.add_call(
            agent_id="agent_a",
            from_number=f"+4917600000{i}",
            to_number="+4930111111",
            start_timestamp=1_780_000_000_000 + i * 1000,
            call_id=f"call_{i}",
        )
    return box, session, agent


def _verify(body: bytes, key: str, header: str, now_ms: int | None = None) -> bool:
    """Retell's documented verifier, written independently of the sandbox."""
    match = re.fullmatch(r"v=(\d+),d=([0-9a-f]{64})", header)
    if not match:
        return False
    ts = int(match.group(1))
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if abs(now_ms - ts) > 300_000:
        return False
    expected = hmac.new(key.encode(), body + match.group(1).encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, match.group(2))


# --- auth and errors ---
@pytest.mark.parametrize("header", [None, "Bearer key_wrong", "Basic a2V5Og==", f"Token {KEY}"])
def test_it_refuses_missing_or_wrong_auth_with_retells_body(api, header):
    box, _, _ = api
    headers = {"Authorization": header} if header else {}
    response = requests.get(f"{box.url}/list-agents", headers=headers, timeout=5)
    assert response.status_code == 401
    assert response.json()["status"] == 401
    assert response.json()["message"]


def test_it_answers_unknown_records_with_404(api):
    box, session, _ = api
    for path in ("/get-agent/agent_nope", "/v2/get-call/call_nope", "/get-phone-number/%2B4912345678"):
        response = session.get(box.url + path, timeout=5)
        assert response.status_code == 404, path
        assert response.json() == {"status": 404, "message": response.json()["message"]}


def test_it_accepts_the_demo_key_out_of_the_box():
    with SANDBOX_CLASS(host="127.0.0.1", port=0) as box:
        response = requests.get(
            f"{box.url}/list-agents", headers={"Authorization": f"Bearer {DEMO_API_KEY}"}, timeout=5
        )
        assert response.status_code == 200
        assert {a["agent_id"] for a in response.json()} >= {"agent_demo_1", "agent_demo_1_1"}
        assert "demo key" in box.describe()


# --- both list-calls generations ---
def test_it_pages_legacy_list_calls_as_an_array_with_an_exclusive_call_id_key(api):
    box, session, _ = api
    first = session.post(f"{box.url}/v2/list-calls", json={"limit": 2, "sort_order": "ascending"}, timeout=5)
    assert first.status_code == 200
    assert [c["call_id"] for c in first.json()] == ["call_0", "call_1"]
    second = session.post(
        f"{box.url}/v2/list-calls",
        json={"limit": 2, "sort_order": "ascending", "pagination_key": "call_1"},
        timeout=5,
    )
    assert [c["call_id"] for c in second.json()] == ["call_2", "call_3"]
    filtered = session.post(
        f"{box.url}/v2/list-calls",
        json={"filter_criteria": {"start_timestamp": {"lower_threshold": 1_780_000_003_000}}},
        timeout=5,
    )
    assert {c["call_id"] for c in filtered.json()} == {"call_3", "call_4"}


def test_it_pages_current_list_calls_as_an_envelope_with_typed_filters(api):
    box, session, _ = api
    body = {
        "limit": 2,
        "include_total": True,
        "filter_criteria": {"call_status": {"op": "in", "type": "enum", "value": ["ended"]}},
    }
    first = session.post(f"{box.url}/v3/list-calls", json=body, timeout=5).json()
    assert set(first) == {"items", "has_more", "pagination_key", "total"}
    assert (len(first["items"]), first["has_more"], first["total"]) == (2, True, 5)
    seen = [c["call_id"] for c in first["items"]]
    key = first["pagination_key"]
    while key:
        page = session.post(
            f"{box.url}/v3/list-calls", json={**body, "pagination_key": key}, timeout=5
        ).json()
        seen += [c["call_id"] for c in page["items"]]
        key = page["pagination_key"]
    assert seen == ["call_4", "call_3", "call_2", "call_1", "call_0"]
    ranged = session.post(
        f"{box.url}/v3/list-calls",
        json={
            "filter_criteria": {
                "start_timestamp": {
                    "op": "bt",
                    "type": "range",
                    "value": [1_780_000_001_000, 1_780_000_002_000],
                }
            }
        },
        timeout=5,
    ).json()
    assert {c["call_id"] for c in ranged["items"]} == {"call_1", "call_2"}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v3/list-calls", {"filter_criteria": {"nonsense": {"op": "eq", "value": 1}}}),
        ("/v3/list-calls", {"limit": 5000}),
        ("/v3/list-calls", {"pagination_key": "not-a-cursor"}),
        ("/v2/list-calls", {"filter_criteria": {"agent_id": "agent_a"}}),
        ("/v2/list-calls", {"sort_order": "sideways"}),
    ],
)
def test_it_refuses_malformed_listings_with_400(api, path, body):
    box, session, _ = api
    response = session.post(box.url + path, json=body, timeout=5)
    assert response.status_code == 400
    assert response.json()["status"] == 400


def test_it_serves_only_legacy_routes_when_asked(api):
    box, session, _ = api
    box.legacy_only = True
    assert session.post(f"{box.url}/v3/list-calls", json={}, timeout=5).status_code == 404
    assert session.post(f"{box.url}/v2/list-agents", json={}, timeout=5).status_code == 404
    assert session.get(f"{box.url}/v2/list-phone-numbers", timeout=5).status_code == 404
    assert session.get(f"{box.url}/list-phone-numbers", timeout=5).status_code == 200


# --- writes ---
def test_it_validates_create_phone_call(api):
    box, session, _ = api
    url = f"{box.url}/v2/create-phone-call"
    assert session.post(url, json={"to_number": "+4917612345678"}, timeout=5).status_code == 400
    assert (
        session.post(url, json={"from_number": "+4930111111", "to_number": "12"}, timeout=5).status_code
        == 400
    )
    assert (
        session.post(
            url, json={"from_number": "+4930999999", "to_number": "+4917612345678"}, timeout=5
        ).status_code
        == 404
    )
    created = session.post(url, json={"from_number": "+4930111111", "to_number": "+4917612345678"}, timeout=5)
    assert created.status_code == 201
    assert created.json()["call_status"] == "registered"
    assert created.json()["direction"] == "outbound"


def test_it_answers_429_with_retry_headers(api):
    box, session, _ = api
    box.throttle(times=1, retry_after=2.0)
    response = session.get(f"{box.url}/list-agents", timeout=5)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert response.headers["retry-after-ms"] == "2000"
    assert response.json()["status"] == 429
    assert session.get(f"{box.url}/list-agents", timeout=5).status_code == 200


def test_it_enforces_its_concurrency_limit(api):
    box, session, _ = api
    box.concurrency_limit = 1
    try:
        url = f"{box.url}/v2/create-phone-call"
        body = {"from_number": "+4930111111", "to_number": "+4917612345678"}
        assert session.post(url, json=body, timeout=5).status_code == 201
        refused = session.post(url, json=body, timeout=5)
        assert refused.status_code == 429
        assert "Retry-After" in refused.headers
    finally:
        box.concurrency_limit = 20


def test_it_updates_the_llm_prompt_and_refuses_unknown_fields(api):
    box, session, agent = api
    llm_id = agent["response_engine"]["llm_id"]
    url = f"{box.url}/update-retell-llm/{llm_id}"
    assert session.patch(url, json={"general_prompt": "neu"}, timeout=5).json()["general_prompt"] == "neu"
    assert session.patch(url, json={"prompt": "x"}, timeout=5).status_code == 400
    assert (
        session.patch(
            f"{box.url}/update-retell-llm/llm_nope", json={"general_prompt": "x"}, timeout=5
        ).status_code
        == 404
    )


# --- webhooks ---
def test_it_signs_as_retells_verifier_expects():
    body = b'{"event":"call_ended","call":{"call_id":"c1"}}'
    headers = sign_webhook(body, KEY, timestamp_ms=1_780_000_000_000)
    signature = headers["x-retell-signature"]
    assert _verify(body, KEY, signature, now_ms=1_780_000_100_000)
    assert not _verify(body, "key_other", signature, now_ms=1_780_000_100_000)
    assert not _verify(body + b" ", KEY, signature, now_ms=1_780_000_100_000)
    assert not _verify(body, KEY, signature, now_ms=1_780_000_000_000 + 300_001)  # outside ±5 min


def test_it_shapes_each_event_as_retell_does():
    call = RetellSandbox(seed=False).add_call(agent_id="a", from_number="+491", to_number="+492")
    started = webhook_payload("call_started", call)["call"]
    ended = webhook_payload("call_ended", call)["call"]
    analyzed = webhook_payload("call_analyzed", call)["call"]
    assert "transcript" not in started and "end_timestamp" not in started
    assert "transcript" in ended and "call_analysis" not in ended
    assert analyzed["call_analysis"]["call_summary"]
    inbound = webhook_payload("call_inbound", call)
    assert inbound == {
        "event": "call_inbound",
        "call_inbound": {"agent_id": "a", "agent_version": 0, "from_number": "+491", "to_number": "+492"},
    }


def test_it_delivers_signed_webhooks(api):
    box, _, _ = api
    received: list[tuple[dict[str, str], bytes]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server API
            received.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            return

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{receiver.server_address[1]}/webhooks/retell"
        for event in ("call_started", "call_ended", "call_analyzed", "call_inbound"):
            assert box.send_webhook(url, event, "call_0", KEY).status_code == 204
    finally:
        receiver.shutdown()
        receiver.server_close()
    assert [json.loads(body)["event"] for _, body in received] == [
        "call_started",
        "call_ended",
        "call_analyzed",
        "call_inbound",
    ]
    for headers, body in received:
        signature = {k.lower(): v for k, v in headers.items()}["x-retell-signature"]
        assert _verify(body, KEY, signature)
        # The official sample re-serialises the parsed JSON compactly; it must verify too.
        reserialised = json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False).encode()
        assert _verify(reserialised, KEY, signature)
    assert [entry["status"] for entry in box.webhook_log] == [204, 204, 204, 204]
