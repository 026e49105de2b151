"""The Twilio and Cal.com sandboxes (one each per module), Alice's salon with a Twilio account and
a customer, and the sandboxes' webhooks routed into Django's test client."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest

from askpro.models import Appointment, Company, Customer
from mcp_servers.calcom.sandbox import DEMO_API_KEY, CalcomSandbox
from mcp_servers.mail.models import EmailAccount
from mcp_servers.mail.sandbox import SmtpSandbox
from mcp_servers.messaging.models import MessagingAccount
from mcp_servers.messaging.sandbox import TwilioSandbox, parse_form
from notifications.models import NotificationSettings

SENDER = "+4930111111"
PHONE = "+4915112345678"
EMAIL = "jane@example.com"
PUBLIC = "https://askpro.example.com"
EVENT_TYPE = 42  # conftest.make_tenant maps every tenant's branch to it


@pytest.fixture(scope="module")
def twilio_server():
    server = TwilioSandbox(demo=False).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def smtp_server():
    server = SmtpSandbox(demo=False).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def calcom_server():
    server = CalcomSandbox().start()
    yield server
    server.stop()


@dataclass
class World:
    twilio: TwilioSandbox
    calcom: CalcomSandbox
    smtp: SmtpSandbox
    alice: Company
    account: MessagingAccount
    customer: Customer
    answers: list[Any] = field(default_factory=list)

    def texts(self) -> list[dict[str, str]]:
        """Every message Twilio was asked to send, oldest first."""
        return [
            parse_form(r.body) for r in self.twilio.requests_to(r"/Messages\.json$") if r.method == "POST"
        ]

    def appointment(self, hours: float = 30, **extra: Any) -> Appointment:
        starts = dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)
        return Appointment.objects.create(
            company=self.alice, customer=self.customer, starts_at=starts,
            ends_at=starts + dt.timedelta(minutes=30), **extra,
        )  # fmt: skip

    def inbound(self, body: str, number: str = PHONE) -> None:
        self.twilio.send_inbound(f"{PUBLIC}/webhooks/twilio?tenant={self.alice.slug}", self.account.account_sid,
                                 SENDER, number, body)  # fmt: skip


@pytest.fixture
def world(
    twilio_server, calcom_server, smtp_server, alice, settings, client, django_capture_on_commit_callbacks
) -> World:
    twilio_server.reset()
    calcom_server.reset()
    smtp_server.reset()
    smtp_server.sink = None
    calcom_server.add_event_type(DEMO_API_KEY, title="Cut", slug="cut", length=30, event_type_id=EVENT_TYPE,
                                 requires_confirmation=True)  # fmt: skip
    settings.TWILIO_API_BASE = twilio_server.url
    settings.MESSAGING_PUBLIC_URL = PUBLIC
    settings.CALCOM_BASE_URL = calcom_server.url
    settings.CALCOM_API_KEY = DEMO_API_KEY
    sid, token = twilio_server.add_account(friendly_name="Alice's account")
    account = MessagingAccount.objects.create(company=alice, account_sid=sid, auth_token=token, sender=SENDER,
                                              whatsapp_sender=SENDER, quiet_hours_start=None, quiet_hours_end=None)  # fmt: skip
    username, password = smtp_server.add_account()
    EmailAccount.objects.create(company=alice, smtp_host=smtp_server.host, smtp_port=smtp_server.port,
                                smtp_security="none", smtp_username=username, smtp_password=password,
                                from_email="salon@alice.example", from_name="Alice's Salon")  # fmt: skip
    NotificationSettings.objects.create(company=alice, channel_order="sms, email", reminder_offsets="24h, 2h")
    customer = Customer.objects.create(company=alice, name="Jane Roe", phone=PHONE, email=EMAIL)
    world = World(twilio_server, calcom_server, smtp_server, alice, account, customer)

    def sink(url: str, headers: dict[str, str], body: bytes):
        parts = urlsplit(url)
        with django_capture_on_commit_callbacks(execute=True):
            answer = client.post(f"{parts.path}?{parts.query}", data=body,
                                 content_type="application/x-www-form-urlencoded",
                                 HTTP_X_TWILIO_SIGNATURE=headers["X-Twilio-Signature"])  # fmt: skip
        world.answers.append(answer)
        return answer

    twilio_server.sink = sink
    yield world
    twilio_server.sink = None
