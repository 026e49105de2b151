"""The sandbox signs webhooks exactly as Stripe does: the official library accepts them."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import stripe

from mcp_servers.stripe.sandbox import StripeSandbox, sign_webhook

SECRET = "whsec_test_signing_secret"


def test_it_signs_a_body_that_construct_event_accepts():
    body = json.dumps(
        {"id": "evt_1", "object": "event", "type": "invoice.paid", "data": {"object": {}}}
    ).encode()
    headers = sign_webhook(body, SECRET)
    event = stripe.Webhook.construct_event(body.decode(), headers["Stripe-Signature"], SECRET)
    assert event.type == "invoice.paid"


def test_it_is_rejected_with_another_secret_or_a_changed_body():
    body = b'{"id":"evt_1","object":"event","type":"invoice.paid","data":{"object":{}}}'
    header = sign_webhook(body, SECRET)["Stripe-Signature"]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body.decode(), header, "whsec_other")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body.decode().replace("paid", "voided"), header, SECRET)


def test_it_is_rejected_when_older_than_the_300_second_tolerance():
    body = b'{"id":"evt_1","object":"event","type":"invoice.paid","data":{"object":{}}}'
    stale = sign_webhook(body, SECRET, timestamp=int(time.time()) - 301)["Stripe-Signature"]
    fresh = sign_webhook(body, SECRET, timestamp=int(time.time()) - 290)["Stripe-Signature"]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body.decode(), stale, SECRET)
    assert stripe.Webhook.construct_event(body.decode(), fresh, SECRET).id == "evt_1"
    assert stale.startswith(f"t={int(time.time()) - 301},v1=")


class _Receiver:
    """A tiny local HTTP endpoint that keeps what it received."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/webhooks/stripe"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver():
    r = _Receiver()
    yield r
    r.stop()


def test_it_sends_a_signed_event_envelope(receiver):
    sandbox = StripeSandbox()
    response = sandbox.send_webhook(
        receiver.url, "invoice.paid", {"id": "in_123", "object": "invoice"}, SECRET
    )
    assert response.status_code == 200
    headers, body = receiver.received[0]
    event = stripe.Webhook.construct_event(body.decode(), headers["stripe-signature"], SECRET)
    assert event.type == "invoice.paid"
    assert event.id.startswith("evt_")
    assert event.object == "event"
    assert event.data.object.id == "in_123"
    assert isinstance(event.created, int)
    assert sandbox.sent_webhooks[0]["status"] == 200


def test_it_delivers_events_of_api_calls_to_registered_endpoints(receiver):
    with StripeSandbox() as sandbox:
        sandbox.add_webhook_endpoint(receiver.url, SECRET)
        client = stripe.StripeClient("sk_test_webhooks1", base_addresses={"api": sandbox.url})
        customer = client.v1.customers.create(params={"email": "a@example.com"})
        deadline = time.time() + 5
        while not receiver.received and time.time() < deadline:
            time.sleep(0.02)
    headers, body = receiver.received[0]
    event = stripe.Webhook.construct_event(body.decode(), headers["stripe-signature"], SECRET)
    assert event.type == "customer.created"
    assert event.data.object.id == customer.id
