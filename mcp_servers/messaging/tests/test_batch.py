"""send_batch: many messages in one call against the Twilio sandbox, each with the rules of
send_sms / send_whatsapp and its own result."""

from __future__ import annotations

import pytest

from askpro.models import Plan
from mcp_core import ratelimit
from mcp_core.api_keys import api_key_authenticate
from mcp_core.pipeline import call_operation
from mcp_servers.messaging import services
from mcp_servers.messaging.models import Message, OptOut
from mcp_servers.messaging.sandbox import parse_form

from .conftest import ALICE_SENDER, CUSTOMER
from .test_operations import _quiet_now, inbound

pytestmark = pytest.mark.django_db
OTHER = "+4915187654321"


def numbers(n: int) -> list[str]:
    return [f"+49151{40000000 + i}" for i in range(n)]


def sms(to: str, key: str | None = None, **extra) -> dict:
    item = {"channel": "sms", "to": to, "body": f"Erinnerung an {to}"}
    if key:
        item["idempotency_key"] = key
    return {**item, **extra}


def posted(sandbox) -> list[dict[str, str]]:
    return [parse_form(r.body) for r in sandbox.requests_to(r"/Messages\.json$") if r.method == "POST"]


def test_it_sends_every_message_of_a_batch_once_and_records_each(world):
    to = numbers(40)
    answer = world.call("send_batch", {"messages": [sms(n, f"r:{i}") for i, n in enumerate(to)]})
    assert answer.success, answer.error
    data = answer.data
    assert (data["sent"], data["deferred"], data["failed"]) == (40, 0, 0)
    assert [r["index"] for r in data["results"]] == list(range(40))
    assert sorted(f["To"] for f in posted(world.sandbox)) == sorted(to)
    rows = {m.customer_number: m for m in Message.objects.filter(company=world.alice)}
    assert set(rows) == set(to)
    for result in data["results"]:
        message = result["message"]
        row = rows[message["customer_number"]]
        assert result["ok"] and message["id"] == row.pk and row.twilio_sid == message["twilio_sid"]
        assert (row.status, row.sender, row.segments, row.idempotency_key) == (
            "queued",
            ALICE_SENDER,
            1,
            f"r:{to.index(row.customer_number)}",
        )
        assert world.sandbox.message(row.twilio_sid)["body"] == f"Erinnerung an {row.customer_number}"
    # The whole batch is one call in the audit log, counted as 40 against the rate limit.
    assert answer.metadata["rate_limit"]["remaining"] <= answer.metadata["rate_limit"]["limit"] - 40


def test_it_answers_a_repeated_batch_with_the_messages_already_sent(world):
    batch = {"messages": [sms(n, f"k:{n}") for n in numbers(5)]}
    first = world.call("send_batch", batch)
    again = world.call("send_batch", batch)
    assert again.success and again.data["sent"] == 5
    assert [r["message"]["id"] for r in again.data["results"]] == [
        r["message"]["id"] for r in first.data["results"]
    ]
    assert all(r["note"].startswith("the same request") for r in again.data["results"])
    assert len(posted(world.sandbox)) == 5 and Message.objects.count() == 5


def test_it_refuses_one_message_and_sends_the_others(world):
    OptOut.objects.create(company=world.alice, number=OTHER, keyword="STOP", source="keyword")
    world.sandbox.opted_out.add((world.alice_account.account_sid, ALICE_SENDER, "+4915199999999"))
    messages = [
        sms(CUSTOMER, "a"),
        sms(OTHER, "b"),  # opted out with us
        sms("123", "c"),  # not a phone number
        sms("+4915199999999", "d"),  # opted out at Twilio: 21610
        {"channel": "whatsapp", "to": CUSTOMER, "body": "Hallo", "idempotency_key": "e"},  # window closed
        {"channel": "sms", "to": CUSTOMER, "content_sid": "HX" + "0" * 32, "idempotency_key": "f"},
    ]
    answer = world.call("send_batch", {"messages": messages})
    assert answer.success, answer.error
    results = answer.data["results"]
    assert [r["ok"] for r in results] == [True, False, False, False, False, False]
    errors = [(r["error"]["code"], r["error"]["field"], r["error"]["reason"]) for r in results[1:]]
    assert errors == [
        ("conflict", "messages[1].to", "opted_out"),
        ("validation_error", "messages[2].to", None),
        ("validation_error", "to", None),
        ("conflict", "messages[4].to", "whatsapp_window_closed"),
        ("validation_error", "messages[5].body", None),
    ]
    assert "opted out" in results[1]["error"]["message"] and "21610" in results[3]["error"]["message"]
    # Only what was sent stays written: the refused rows are gone, their keys free again.
    assert list(Message.objects.values_list("idempotency_key", flat=True)) == ["a"]
    assert answer.data["failed"] == 5 and answer.data["sent"] == 1


def test_it_sends_whatsapp_free_text_inside_the_window_and_templates_outside(world):
    inbound(world, "Hallo", whatsapp=True)
    template = world.sandbox.add_template()
    answer = world.call("send_batch", {"messages": [
        {"channel": "whatsapp", "to": CUSTOMER, "body": "Gern, bis morgen"},
        {"channel": "whatsapp", "to": OTHER, "content_sid": template, "content_variables": {"1": "Jane"}},
    ]})  # fmt: skip
    assert answer.success and answer.data["sent"] == 2, answer.data
    forms = posted(world.sandbox)
    assert {f["To"] for f in forms} == {f"whatsapp:{CUSTOMER}", f"whatsapp:{OTHER}"}
    assert any(f.get("ContentSid") == template for f in forms)


def test_it_defers_a_batch_in_quiet_hours_unless_a_message_is_urgent(world):
    _quiet_now(world.alice_account)
    answer = world.call("send_batch", {"messages": [sms(CUSTOMER, "q1"), sms(OTHER, "q2", urgent=True)]})
    assert answer.success
    first, second = answer.data["results"]
    assert first["deferred"] and first["message"]["status"] == "deferred" and "quiet hours" in first["note"]
    assert not second["deferred"] and second["message"]["status"] == "queued"
    assert [f["To"] for f in posted(world.sandbox)] == [OTHER]
    assert (answer.data["sent"], answer.data["deferred"]) == (1, 1)


def test_it_keeps_a_message_twilio_may_have_taken_and_forgets_one_it_refused(world):
    world.sandbox.inject_fault(status=500, count=1, path=r"/Messages\.json$")
    answer = world.call("send_batch", {"messages": [sms(CUSTOMER, "u1")]})
    [result] = answer.data["results"]
    assert result["error"]["code"] == "upstream_error"
    kept = Message.objects.get(idempotency_key="u1")
    assert "may have been sent" in kept.error_message
    # A retry with the key answers with the kept record instead of texting again.
    again = world.call("send_batch", {"messages": [sms(CUSTOMER, "u1")]})
    assert again.data["results"][0]["message"]["id"] == kept.pk and len(posted(world.sandbox)) == 1


def test_it_does_not_start_requests_after_the_deadline(world):
    """Past the deadline nothing more reaches Twilio; those rows are removed, their keys free."""
    import time

    from mcp_core.contracts import SYSTEM_PRINCIPAL, MCPRequest, OperationContext

    ctx = OperationContext(
        request=MCPRequest(
            service="messaging", operation="send_batch", params={}, principal=SYSTEM_PRINCIPAL
        ),
        principal=SYSTEM_PRINCIPAL,
        tenant=world.alice,
        deadline=time.monotonic() - 1,
    )
    out = [("", services.Outgoing(channel="sms", to=n, body="x"), f"late:{n}") for n in numbers(3)]
    outcomes = services.send_batch(ctx, world.alice, out)
    assert [o.error.code for o in outcomes] == ["timeout"] * 3
    assert all(o.error.details["not_attempted"] for o in outcomes)
    assert posted(world.sandbox) == [] and not Message.objects.exists()


@pytest.mark.parametrize(
    "params, field",
    [
        ({"messages": []}, "messages"),
        ({"messages": [sms(CUSTOMER)] * 501}, "messages"),
        ({"messages": [sms(CUSTOMER, "same"), sms(OTHER, "same")]}, "messages[1].idempotency_key"),
        ({"messages": [sms(CUSTOMER, "bad key")]}, "messages[0].idempotency_key"),
        ({"messages": [{"channel": "fax", "to": CUSTOMER, "body": "x"}]}, "messages[0].channel"),
        ({"messages": [sms(CUSTOMER, body="x" * 1601)]}, "messages[0].body"),
    ],
)
def test_it_refuses_a_malformed_batch_naming_the_field_and_sends_nothing(world, params, field):
    answer = world.call("send_batch", params)
    assert not answer.success and answer.error["code"] == "validation_error"
    assert answer.error["details"]["field"] == field, answer.error
    assert posted(world.sandbox) == [] and not Message.objects.exists()


def test_it_keeps_each_tenant_to_its_own_account_and_records(world):
    key = "shared-key"
    alice = world.call("send_batch", {"messages": [sms(CUSTOMER, key)]})
    bob = world.call("send_batch", {"messages": [sms(CUSTOMER, key)]}, key=world.bob_key)
    assert alice.success and bob.success
    a, b = alice.data["results"][0]["message"], bob.data["results"][0]["message"]
    assert a["id"] != b["id"]
    assert world.sandbox.message(a["twilio_sid"])["account_sid"] == world.alice_account.account_sid
    assert world.sandbox.message(b["twilio_sid"])["account_sid"] == world.bob_account.account_sid
    # Bob's key cannot send for Alice's tenant.
    refused = call_operation("messaging", "send_batch", {"messages": [sms(OTHER)]},
                             principal=api_key_authenticate(world.bob_key), tenant=world.alice.slug)  # fmt: skip
    assert refused.error["code"] == "forbidden"
    assert not Message.objects.filter(customer_number=OTHER).exists() and len(posted(world.sandbox)) == 2


def test_it_counts_a_batch_as_its_messages_against_the_rate_limit(world):
    plan = Plan.objects.create(code="small", name="Small", requests_per_minute=10, max_concurrent_calls=5)
    world.alice.plan = plan
    world.alice.save()
    ratelimit.reset_local_state_for_tests()
    too_big = world.call("send_batch", {"messages": [sms(n) for n in numbers(11)]})
    assert too_big.error["code"] == "validation_error" and too_big.error["details"]["weight"] == 11
    assert "send at most 10" in too_big.error["message"]
    assert world.call("send_batch", {"messages": [sms(n) for n in numbers(8)]}).success
    over = world.call("send_batch", {"messages": [sms(n) for n in numbers(3)]})
    assert over.error["code"] == "rate_limited" and "counts as 3" in over.error["message"]
    assert len(posted(world.sandbox)) == 8


def test_it_refuses_a_batch_for_a_tenant_without_an_account_even_of_bad_numbers(world):
    world.alice_account.delete()
    for messages in ([sms(CUSTOMER)], [sms("123")]):
        answer = world.call("send_batch", {"messages": messages})
        assert answer.error["code"] == "not_configured", answer
    assert posted(world.sandbox) == [] and not Message.objects.exists()
