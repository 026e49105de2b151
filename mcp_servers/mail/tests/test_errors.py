"""What goes wrong: bad input naming the field, an SMTP server refusing or failing (recorded
as failed, retried with the same key), wrong credentials, and secrets never shown."""

from __future__ import annotations

import json
import logging

import pytest

from mcp_core.models import AuditEntry
from mcp_servers.mail.models import OutboundEmail

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"to": "not-an-address", "subject": "s", "text": "t"}, "to"),
        ({"to": "a@b..example", "subject": "s", "text": "t"}, "to"),
        ({"to": "c@example.com"}, "template"),
        ({"to": "c@example.com", "subject": "s"}, "text"),
        ({"to": "c@example.com", "template": "confirmation"}, "appointment_id"),
        ({"to": "c@example.com", "template": "invoice_sent"}, "invoice_id"),
        ({"to": "c@example.com", "template": "reminder", "appointment_id": 1, "subject": "s"}, "subject"),
        ({"to": "c@example.com", "subject": "s", "text": "t", "appointment_id": 1}, "appointment_id"),
        ({"to": "c@example.com", "template": "welcome", "appointment_id": 1}, "template"),
        ({"to": "c@example.com", "subject": "s", "text": "t", "language": "fr"}, "language"),
        ({"to": "c@example.com", "template": "reminder", "appointment_id": 0}, "appointment_id"),
        ({"to": "c@example.com", "subject": "Hallo\nBcc: all@example.com", "text": "t"}, "subject"),
    ],
)
def test_it_refuses_bad_send_params_naming_the_field(world, params, field):
    answer = world.call("send_email", params)
    assert answer.error["code"] == "validation_error", answer.error
    assert answer.error["details"]["field"] == field and field in answer.error["message"]
    assert world.sandbox.received() == [] and not OutboundEmail.objects.exists()


def test_it_answers_not_found_for_an_unknown_appointment_invoice_or_customer(world):
    for params, field in (
        ({"template": "reminder", "appointment_id": 999_999}, "appointment_id"),
        ({"template": "invoice_sent", "invoice_id": 999_999}, "invoice_id"),
        ({"subject": "s", "text": "t", "customer_id": 999_999}, "customer_id"),
    ):
        answer = world.call("send_email", {"to": "c@example.com", **params})
        assert answer.error["code"] == "not_found" and answer.error["details"]["field"] == field


def test_it_records_a_failed_send_as_failed_and_sends_it_on_a_retry_with_the_same_key(world):
    world.sandbox.fail_next(451, "DATA")
    params = {"to": "c@example.com", "template": "confirmation", "appointment_id": world.appointment.pk}
    failed = world.call("send_email", params, idempotency_key="confirm-7")
    assert failed.error["code"] == "upstream_error" and "451" in failed.error["message"]
    row = OutboundEmail.objects.get(pk=failed.error["details"]["email_id"])
    assert row.status == "failed" and "451" in row.error_message and world.sandbox.received() == []
    again = world.call("send_email", params, idempotency_key="confirm-7")
    assert again.success and again.data["email_id"] == row.pk and again.data["status"] == "sent"
    assert OutboundEmail.objects.get(pk=row.pk).attempts == 2 and len(world.sandbox.received()) == 1
    assert world.call("send_email", params, idempotency_key="confirm-7").data["email_id"] == row.pk
    assert len(world.sandbox.received()) == 1


def test_it_says_when_the_server_refuses_the_recipient(world):
    world.sandbox.reject("nobody@example.com")
    answer = world.call("send_email", {"to": "nobody@example.com", "subject": "s", "text": "t"})
    assert (
        answer.error["code"] == "upstream_error" and "refused the recipient (550" in answer.error["message"]
    )


def test_it_never_shows_the_smtp_password_when_it_is_wrong(world, caplog):
    secret = world.alice_account.smtp_password
    world.sandbox.accounts[world.alice_account.smtp_username] = "something-else"
    caplog.set_level(logging.DEBUG)
    sent = world.call("send_email", {"to": "c@example.com", "subject": "s", "text": "t"})
    tested = world.call("test_connection")
    for answer in (sent, tested):
        assert answer.error["code"] == "upstream_error"
        assert "rejected the username or password" in answer.error["message"]
        assert secret not in json.dumps(answer.error)
    assert secret not in caplog.text
    audit = json.dumps(list(AuditEntry.objects.filter(service="email").values()), default=str)
    assert secret not in audit and world.alice_account.webhook_secret not in audit


def test_it_answers_upstream_error_when_the_server_is_down(world):
    world.alice_account.smtp_port = 1  # nothing listens there
    world.alice_account.save()
    answer = world.call("send_email", {"to": "c@example.com", "subject": "s", "text": "t"})
    assert answer.error["code"] == "upstream_error" and "cannot be reached" in answer.error["message"]
    assert OutboundEmail.objects.get().status == "failed"


def test_it_names_what_is_missing_when_the_account_is_incomplete(world):
    world.alice_account.from_email = ""
    world.alice_account.save()
    answer = world.call("test_connection")
    assert answer.error["code"] == "not_configured" and "sender address" in answer.error["message"]
