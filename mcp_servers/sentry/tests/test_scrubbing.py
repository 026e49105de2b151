"""sentry-sdk is initialised with a before_send that scrubs secrets (mcp_core.sentry)."""

import sentry_sdk
from sentry_sdk.transport import Transport

from mcp_core.sentry import scrub_event


class CapturingTransport(Transport):
    def __init__(self, options=None):
        super().__init__(options)
        self.events = []

    def capture_envelope(self, envelope):
        for item in envelope.items:
            if item.type == "event":
                self.events.append(item.payload.json)


def test_it_scrubs_secrets_from_events_before_sending():
    transport = CapturingTransport()
    client = sentry_sdk.Client(
        dsn="http://publickey@127.0.0.1:9/42",
        transport=transport,
        before_send=scrub_event,
        traces_sample_rate=0,
    )
    with sentry_sdk.new_scope() as scope:
        scope.set_client(client)
        scope.set_extra(
            "payload", {"api_key": "askp_0123456789_abcdef", "note": "sk_test_123456", "ok": "fine"}
        )
        api_key = "cal_live_very_secret"  # noqa: F841 - a frame variable the event would carry
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            sentry_sdk.capture_exception()
        client.flush()
    assert transport.events, "the event was not captured"
    text = str(transport.events[0])
    assert "askp_0123456789_abcdef" not in text
    assert "sk_test_123456" not in text
    assert "fine" in text


def test_it_redacts_authorization_headers_and_request_bodies():
    event = {
        "request": {
            "headers": {"Authorization": "Bearer askp_x", "Stripe-Signature": "t=1,v1=abc", "Accept": "json"},
            "data": {"password": "hunter2", "name": "Ann"},
            "cookies": "sessionid=abc",
        }
    }
    scrubbed = scrub_event(event)
    assert scrubbed["request"]["headers"]["Authorization"] == "[redacted]"
    assert scrubbed["request"]["headers"]["Stripe-Signature"] == "[redacted]"
    assert scrubbed["request"]["headers"]["Accept"] == "json"
    assert scrubbed["request"]["data"] == {"password": "[redacted]", "name": "Ann"}
    assert scrubbed["request"]["cookies"] == "[redacted]"


def test_it_starts_the_project_with_sentry_enabled():
    """settings import mcp_core.sentry before apps load: it must not touch models."""
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "SENTRY_DSN": "http://publickey@127.0.0.1:9/42",
        "DEBUG": "1",
        "DJANGO_SETTINGS_MODULE": "askpro.settings",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
