"""Twilio's status callbacks and inbound messages through the one ingestion path: the sandbox
signs and sends them, the endpoint verifies X-Twilio-Signature over the public URL, stores,
acknowledges, and the queue applies them."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

import pytest

from mcp_servers.messaging.models import Message, OptOut
from mcp_servers.messaging.sandbox import parse_form, signed_request
from mcp_servers.webhooks.models import RejectedDelivery, WebhookEvent

from .conftest import ALICE_SENDER, CUSTOMER

pytestmark = pytest.mark.django_db
PUBLIC = "https://askpro.example.com"


@pytest.fixture
def routed(world, client, django_capture_on_commit_callbacks):
    """The sandbox's deliveries reach the endpoint through Django's test client, as a proxy
    would forward them: to http://testserver, while Twilio signed the public https URL."""
    answers = []

    def sink(url: str, headers: dict[str, str], body: bytes):
        parts = urlsplit(url)
        with django_capture_on_commit_callbacks(execute=True):
            answer = client.post(
                f"{parts.path}?{parts.query}",
                data=body,
                content_type="application/x-www-form-urlencoded",
                HTTP_X_TWILIO_SIGNATURE=headers["X-Twilio-Signature"],
            )
        answers.append(answer)
        return answer

    world.sandbox.sink = sink
    world.answers = answers
    return world


def deliver(world, params: dict[str, str], *, token: str | None = None, tenant: str = "alice-salon"):
    url = f"{PUBLIC}/webhooks/twilio?tenant={tenant}"
    headers, body = signed_request(url, params, token or world.alice_account.auth_token)
    return world.sandbox.sink(url, headers, body)


def test_it_applies_signed_status_callbacks_and_fetches_the_price(routed):
    message = routed.call("send_sms", {"to": CUSTOMER, "body": "Hallo"}).data["message"]
    while routed.sandbox.advance(message["twilio_sid"]):
        pass
    assert [a.status_code for a in routed.answers] == [202, 202, 202]
    row = Message.objects.get(pk=message["id"])
    assert row.status == "delivered" and row.price is not None and row.price_unit == "USD"
    events = WebhookEvent.objects.filter(provider="twilio").order_by("pk")
    assert [e.status for e in events] == ["processed"] * 3
    assert {e.tenant_id for e in events} == {routed.alice.pk}


def test_it_keeps_delivered_when_a_late_sent_arrives(routed):
    message = routed.call("send_sms", {"to": CUSTOMER, "body": "Hallo"}).data["message"]
    sid = message["twilio_sid"]
    assert deliver(routed, routed.sandbox.callback_params(sid, "delivered")).status_code == 202
    assert deliver(routed, routed.sandbox.callback_params(sid, "sent")).status_code == 202
    assert Message.objects.get(pk=message["id"]).status == "delivered"
    late = WebhookEvent.objects.get(provider="twilio", type="status.sent")
    assert late.status == "processed" and "kept delivered" in late.result


def test_it_takes_a_redelivered_callback_once(routed):
    sid = routed.call("send_sms", {"to": CUSTOMER, "body": "x"}).data["message"]["twilio_sid"]
    params = routed.sandbox.callback_params(sid, "sent")
    assert deliver(routed, params).status_code == 202
    again = deliver(routed, params)
    assert again.status_code == 200 and again.json() == {"status": "duplicate"}
    assert WebhookEvent.objects.get(provider="twilio").duplicate_count == 1


def test_it_records_inbound_messages_and_applies_german_keywords(routed):
    routed.sandbox.send_inbound(f"{PUBLIC}/webhooks/twilio?tenant=alice-salon", routed.alice_account.account_sid,
                                ALICE_SENDER, CUSTOMER, "STOPP")  # fmt: skip
    assert routed.answers[-1].status_code == 202
    assert OptOut.objects.get(company=routed.alice, number=CUSTOMER).opted_out
    inbound = Message.objects.get(direction="inbound")
    assert (inbound.body, inbound.keyword, inbound.company) == ("STOPP", "STOPP", routed.alice)
    [confirmation] = [
        parse_form(r.body) for r in routed.sandbox.requests_to(r"/Messages\.json$") if r.method == "POST"
    ]
    assert confirmation["To"] == CUSTOMER and "keine Nachrichten mehr" in confirmation["Body"]
    assert routed.call("send_sms", {"to": CUSTOMER, "body": "x"}).error["details"]["reason"] == "opted_out"


def test_it_opens_the_whatsapp_window_with_an_inbound_whatsapp_message(routed):
    routed.sandbox.send_inbound(f"{PUBLIC}/webhooks/twilio?tenant=alice-salon", routed.alice_account.account_sid,
                                ALICE_SENDER, CUSTOMER, "Hallo", whatsapp=True)  # fmt: skip
    answer = routed.call("send_whatsapp", {"to": CUSTOMER, "body": "Wie können wir helfen?"})
    assert answer.success, answer.error


@pytest.mark.parametrize(
    ("case", "reason"),
    [("other token", "bad_signature"), ("other tenant", "bad_signature"), ("no tenant", "no_secret"),
     ("no signature", "missing_signature"), ("tampered", "bad_signature"), ("host as arrived", "bad_signature")],
)  # fmt: skip
def test_it_refuses_deliveries_that_twilio_did_not_sign_for_that_tenant(routed, client, case, reason):
    sid = routed.call("send_sms", {"to": CUSTOMER, "body": "x"}).data["message"]["twilio_sid"]
    params = routed.sandbox.callback_params(sid, "delivered")
    url = f"{PUBLIC}/webhooks/twilio?tenant=alice-salon"
    token = routed.alice_account.auth_token
    if case == "other token":
        token = routed.bob_account.auth_token
    headers, body = signed_request(url, params, token)
    path = "/webhooks/twilio?tenant=alice-salon"
    if case == "other tenant":
        path = "/webhooks/twilio?tenant=bob-practice"
    if case == "no tenant":
        path = "/webhooks/twilio"
    if case == "tampered":
        body = urlencode({**params, "MessageStatus": "failed"}).encode()
    if case == "host as arrived":  # signed over the address the proxy forwarded to
        headers, body = signed_request(f"http://testserver{path}", params, token)
    extra = {} if case == "no signature" else {"HTTP_X_TWILIO_SIGNATURE": headers["X-Twilio-Signature"]}
    answer = client.post(path, data=body, content_type="application/x-www-form-urlencoded", **extra)
    assert answer.status_code == 401 and answer.json()["reason"] == reason
    assert not WebhookEvent.objects.filter(provider="twilio").exists()
    assert Message.objects.get(twilio_sid=sid).status == "queued"
    assert RejectedDelivery.objects.get(provider="twilio", reason=reason).count == 1


def test_it_checks_the_signature_over_the_address_it_arrived_at_without_a_public_url(
    routed, client, settings
):
    settings.MESSAGING_PUBLIC_URL = ""
    sid = routed.call("send_sms", {"to": CUSTOMER, "body": "x"}).data["message"]["twilio_sid"]
    params = routed.sandbox.callback_params(sid, "sent")
    headers, body = signed_request("http://testserver/webhooks/twilio?tenant=alice-salon", params,
                                   routed.alice_account.auth_token)  # fmt: skip
    answer = client.post("/webhooks/twilio?tenant=alice-salon", data=body,
                         content_type="application/x-www-form-urlencoded",
                         HTTP_X_TWILIO_SIGNATURE=headers["X-Twilio-Signature"])  # fmt: skip
    assert answer.status_code == 202


@pytest.mark.parametrize(
    ("body", "problem"),
    [(b"Body=%00&MessageSid=SM1", "NUL"), (b"Body=%ff%fe", "UTF-8"), (b"\xff\xfe=1", "UTF-8"),
     (b"&".join(b"k%d=v" % i for i in range(300)), "fields")],
)  # fmt: skip
def test_it_refuses_a_body_it_cannot_store_even_when_signed(routed, client, body, problem):
    from mcp_servers.messaging.sandbox import sign

    url = f"{PUBLIC}/webhooks/twilio?tenant=alice-salon"
    try:
        form = parse_form(body)
    except UnicodeDecodeError:
        form = {}
    signature = sign(url, form, routed.alice_account.auth_token)
    answer = client.post("/webhooks/twilio?tenant=alice-salon", data=body,
                         content_type="application/x-www-form-urlencoded", HTTP_X_TWILIO_SIGNATURE=signature)  # fmt: skip
    assert answer.status_code == 400 and answer.json()["reason"] == "bad_payload"
    assert problem in answer.json()["message"]
    assert not WebhookEvent.objects.filter(provider="twilio").exists()
