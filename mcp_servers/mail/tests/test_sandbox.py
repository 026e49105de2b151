"""The SMTP sandbox keeps its contract with a plain smtplib client: authentication, refusals,
what it stores, and the tracking events it builds."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

import pytest

from mcp_servers.mail.webhooks import sign_webhook


def _message(to: str = "c@example.com") -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.com", to, "Hallo"
    message["Message-ID"] = "<m1@example.com>"
    message["X-PM-Metadata-email-id"] = "42"
    message.set_content("plain")
    message.add_alternative("<p>html</p>", subtype="html")
    return message


def test_it_requires_a_login_once_it_has_accounts_and_refuses_a_wrong_password(smtp):
    user, password = smtp.add_account()
    with smtplib.SMTP(smtp.host, smtp.port, timeout=5) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.send_message(_message())
        assert refused.value.smtp_code == 530
        with pytest.raises(smtplib.SMTPAuthenticationError) as wrong:
            client.login(user, "nope")
        assert wrong.value.smtp_code == 535
        client.login(user, password)
        client.send_message(_message())
    [received] = smtp.received()
    assert received.auth_user == user and received.rcpt_tos == ["c@example.com"]
    assert (received.text().strip(), received.html().strip()) == ("plain", "<p>html</p>")
    assert (user, False) in smtp.logins and smtp.logins[-1] == (user, True)


def test_it_refuses_rejected_recipients_and_injected_failures(smtp):
    smtp.reject("gone@example.com")
    smtp.fail_next(451, "MAIL", "4.7.0 try later")
    user, password = smtp.add_account()
    with smtplib.SMTP(smtp.host, smtp.port, timeout=5) as client:
        client.login(user, password)
        with pytest.raises(smtplib.SMTPSenderRefused):
            client.send_message(_message())
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.send_message(_message("gone@example.com"))
        assert refused.value.recipients["gone@example.com"][0] == 550
    assert smtp.received() == []


def test_it_builds_postmarks_tracking_payloads_from_what_it_received(smtp):
    user, password = smtp.add_account()
    with smtplib.SMTP(smtp.host, smtp.port, timeout=5) as client:
        client.login(user, password)
        client.send_message(_message())
    [received] = smtp.received()
    bounce = smtp.tracking_event(received, "hard_bounce")
    assert (bounce["RecordType"], bounce["Type"], bounce["TypeCode"]) == ("Bounce", "HardBounce", 1)
    assert bounce["MessageID"] == "m1@example.com" and bounce["Metadata"] == {"email-id": "42"}
    assert bounce["Email"] == "c@example.com" and bounce["Inactive"] is True
    assert smtp.tracking_event(received, "soft_bounce")["Inactive"] is False
    assert smtp.tracking_event(received, "complaint")["RecordType"] == "SpamComplaint"
    assert smtp.tracking_event(received, "delivery")["Recipient"] == "c@example.com"
    assert sign_webhook(b"{}", "user:pass")["Authorization"] == "Basic dXNlcjpwYXNz"


def test_it_starts_on_the_configured_port_for_run_sandbox(settings):
    from mcp_core.management.commands.run_sandbox import discover_sandboxes
    from mcp_servers.mail.sandbox import DEMO_PASSWORD, DEMO_USERNAME, SmtpSandbox

    assert discover_sandboxes()["email"] is SmtpSandbox and "email" in settings.SANDBOX_PORTS
    with SmtpSandbox() as demo, smtplib.SMTP(demo.host, demo.port, timeout=5) as client:
        client.login(DEMO_USERNAME, DEMO_PASSWORD)
        assert demo.url == f"smtp://127.0.0.1:{demo.port}"
