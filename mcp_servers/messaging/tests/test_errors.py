"""Every upstream failure and bad input mapped to its error code; missing credentials; another
tenant's records answered exactly like unknown ones; secrets in no answer."""

from __future__ import annotations

import pytest

from mcp_servers.messaging.models import Message, MessagingAccount

from .conftest import CUSTOMER

pytestmark = pytest.mark.django_db


def test_it_is_not_configured_without_a_twilio_account(twilio, alice_key, alice):
    from mcp_core.api_keys import api_key_authenticate
    from mcp_core.pipeline import call_operation

    answer = call_operation(
        "messaging", "send_sms", {"to": CUSTOMER, "body": "x"}, principal=api_key_authenticate(alice_key)
    )
    assert answer.error["code"] == "not_configured"
    assert "Twilio auth token" in answer.error["message"]
    assert twilio.request_log == []


def test_it_names_the_missing_parts_of_an_incomplete_account(world):
    MessagingAccount.objects.filter(pk=world.alice_account.pk).update(sender="")
    answer = world.call("send_sms", {"to": CUSTOMER, "body": "x"})
    assert answer.error["code"] == "not_configured" and "SMS sender" in answer.error["message"]


def test_it_is_not_configured_for_whatsapp_without_a_whatsapp_sender(world):
    world.alice_account.whatsapp_sender = ""
    world.alice_account.save()
    template = world.sandbox.add_template()
    answer = world.call("send_whatsapp", {"to": CUSTOMER, "content_sid": template})
    assert answer.error["code"] == "not_configured" and "WhatsApp sender" in answer.error["message"]


@pytest.mark.parametrize(
    ("to", "problem"),
    [("123", "not a valid number"), ("+49 30", "not a valid number"), ("hello", "not a phone number"),
     ("+1 555 0100", "not a valid number")],
)  # fmt: skip
def test_it_refuses_a_number_that_is_not_a_phone_number_naming_the_field(world, to, problem):
    answer = world.call("send_sms", {"to": to, "body": "x"})
    assert answer.error["code"] == "validation_error"
    assert answer.error["message"].startswith("to: ") and problem in answer.error["message"]
    assert world.sandbox.request_log == []


def test_it_refuses_whatsapp_without_text_or_template(world):
    answer = world.call("send_whatsapp", {"to": CUSTOMER})
    assert answer.error["code"] == "validation_error" and answer.error["details"]["field"] == "body"
    answer = world.call("send_whatsapp", {"to": CUSTOMER, "body": "x", "content_variables": {"1": "a"}})
    assert answer.error["details"]["field"] == "content_variables"


def test_it_maps_rejected_credentials_to_an_upstream_error_without_the_token(world):
    world.sandbox.accounts[world.alice_account.account_sid]["token"] = "rotated-at-twilio"
    answer = world.call("send_sms", {"to": CUSTOMER, "body": "x"})
    assert answer.error["code"] == "upstream_error" and "401" in answer.error["message"]
    assert world.alice_account.auth_token not in str(answer.to_dict())
    assert not Message.objects.exists()


def test_it_maps_a_429_to_rate_limited_and_writes_nothing(world):
    world.sandbox.inject_fault(status=429, count=1)
    answer = world.call("send_sms", {"to": CUSTOMER, "body": "x"})
    assert answer.error["code"] == "rate_limited" and answer.error["details"]["twilio_code"] == 20429
    assert not Message.objects.exists()


@pytest.mark.parametrize("status", [500, 503])
def test_it_keeps_a_message_twilio_may_have_sent_and_does_not_send_it_twice(world, status):
    world.sandbox.inject_fault(status=status, count=1)
    answer = world.call("send_sms", {"to": CUSTOMER, "body": "x"}, idempotency_key="k1")
    assert answer.error["code"] == "upstream_error" and answer.error["details"]["twilio_code"] in (
        20500,
        20503,
    )
    [kept] = Message.objects.all()
    assert kept.status == "accepted" and "may have been sent" in kept.error_message
    again = world.call("send_sms", {"to": CUSTOMER, "body": "x"}, idempotency_key="k1")
    assert again.data["message"]["id"] == kept.pk
    assert len([r for r in world.sandbox.request_log if r.method == "POST"]) == 1


def test_it_times_out_within_the_calls_deadline(world, settings):
    settings.MCP_DEFAULT_TIMEOUT = 0.5
    world.sandbox.inject_fault(delay=2.0, count=1)
    answer = world.call("test_connection")
    assert answer.error["code"] == "timeout"


@pytest.mark.django_db(transaction=True)
def test_it_sends_once_for_two_concurrent_requests_with_one_key(world):
    import threading

    from django.db import connection

    world.sandbox.inject_fault(delay=0.5, count=1, path=r"/Messages\.json$")  # the first one waits at Twilio
    answers = []

    def send():
        answers.append(world.call("send_sms", {"to": CUSTOMER, "body": "x"}, idempotency_key="same"))
        connection.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len([r for r in world.sandbox.request_log if r.method == "POST"]) == 1
    assert sorted(bool(a.success) for a in answers) in ([False, True], [True, True])


def test_it_maps_twilios_recipient_errors_to_the_to_field(world):
    world.sandbox.opted_out.add((world.alice_account.account_sid, world.alice_account.sender, CUSTOMER))
    answer = world.call("send_sms", {"to": CUSTOMER, "body": "x"})
    assert answer.error["code"] == "validation_error" and answer.error["details"]["field"] == "to"
    assert "21610" in answer.error["message"] and "unsubscribed" in answer.error["message"]


def test_it_answers_another_tenants_message_like_an_unknown_one(world):
    message = world.call("send_sms", {"to": CUSTOMER, "body": "x"}).data["message"]
    theirs = world.call("get_message_status", {"message_id": message["id"]}, key=world.bob_key)
    unknown = world.call("get_message_status", {"message_id": message["id"] + 1000}, key=world.bob_key)
    assert theirs.error["code"] == unknown.error["code"] == "not_found"
    assert theirs.error["message"].replace(str(message["id"]), "N") == unknown.error["message"].replace(
        str(message["id"] + 1000), "N"
    )
    assert world.call("list_messages", key=world.bob_key).data["messages"] == []
    thread = world.call("get_conversation", {"customer_number": CUSTOMER}, key=world.bob_key).data
    assert thread["messages"] == []


def test_it_refuses_an_empty_time_range(world):
    answer = world.call("list_messages", {"since": "2026-12-03T10:00:00Z", "until": "2026-12-03T09:00:00Z"})
    assert answer.error["code"] == "validation_error" and answer.error["details"]["field"] == "until"


def test_it_keeps_secrets_out_of_reprs(world):
    from mcp_servers.messaging.services import account_for

    account = account_for(world.alice)
    assert world.alice_account.auth_token not in repr(account.twilio)
    assert world.alice_account.auth_token not in repr(account)


def test_it_reports_not_configured_health_without_any_tenant_account(twilio, alice, bob):
    from mcp_core.registry import get_registry

    server = get_registry().servers["messaging"]
    assert server.is_configured() is False
    assert server.health().status == "not_configured"
    MessagingAccount.objects.create(company=alice, account_sid="", auth_token="token-without-sid")
    assert server.health().status == "not_configured"
