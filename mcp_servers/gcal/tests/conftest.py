"""A live Google Calendar sandbox per test module and two tenants: Alice's salon connected
through OAuth (a refresh token), Bob's practice through a service account with calendars
shared with it. The real google-api-python-client and google-auth talk to the sandbox.

Push notifications from the sandbox are routed into Django's test client (`sink`), so they go
through the real webhook endpoint, its verification and its queue."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest

from askpro.models import Company
from mcp_core.api_keys import api_key_authenticate
from mcp_core.contracts import MCPResponse
from mcp_core.pipeline import call_operation
from mcp_core.tenancy import forget_tenant_secrets
from mcp_servers.gcal.client import forget_credentials
from mcp_servers.gcal.models import CalendarLink, GoogleAccount
from mcp_servers.gcal.sandbox import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, GoogleCalendarSandbox

ALICE_USER = "owner@alice-salon.example"
BOB_SA = "askpro@bob-practice.iam.gserviceaccount.com"
BOB_CALENDAR = "dr-bob@bob-practice.example"
PUBLIC = "https://askpro.example.com"


@pytest.fixture(scope="module")
def sandbox():
    server = GoogleCalendarSandbox(demo=False).start()
    yield server
    server.stop()


@pytest.fixture
def google(sandbox, settings) -> GoogleCalendarSandbox:
    sandbox.reset()
    sandbox.sink = None
    settings.GCAL_API_BASE = sandbox.url
    settings.GCAL_TOKEN_URI = sandbox.url + "/token"
    settings.GCAL_AUTH_URI = sandbox.url + "/o/oauth2/v2/auth"
    settings.GCAL_OAUTH_CLIENT_ID = DEMO_CLIENT_ID
    settings.GCAL_OAUTH_CLIENT_SECRET = DEMO_CLIENT_SECRET
    settings.GCAL_PUBLIC_URL = PUBLIC
    settings.GCAL_RETRY_BASE_SECONDS = 0.01
    forget_credentials()
    forget_tenant_secrets()
    yield sandbox
    forget_credentials()


@dataclass
class World:
    sandbox: GoogleCalendarSandbox
    alice: Company
    bob: Company
    alice_key: str
    bob_key: str
    alice_account: GoogleAccount
    bob_account: GoogleAccount
    alice_staff_calendar: str
    sa_key: dict[str, Any]

    def call(self, operation: str, params: dict[str, Any] | None = None, *, key: str | None = None,
             idempotency_key: str | None = None) -> MCPResponse:  # fmt: skip
        principal = api_key_authenticate(key or self.alice_key)
        return call_operation(
            "gcal", operation, params or {}, principal=principal, idempotency_key=idempotency_key
        )

    def bob_call(self, operation: str, params: dict[str, Any] | None = None) -> MCPResponse:
        return self.call(operation, params, key=self.bob_key)


@pytest.fixture
def world(google, alice, bob, alice_key, bob_key) -> World:
    refresh = google.state.add_user(ALICE_USER)
    staff_calendar = google.state.add_calendar(ALICE_USER, summary="Anna (stylist)")
    alice_account = GoogleAccount.objects.create(company=alice, mode="oauth", refresh_token=refresh)
    key = google.state.add_service_account(BOB_SA)
    google.state.add_user(BOB_CALENDAR)
    google.state.calendars[BOB_CALENDAR].readers.add(BOB_SA)  # shared with the service account
    bob_account = GoogleAccount.objects.create(
        company=bob, mode="service_account", service_account_key=json.dumps(key)
    )
    for company, calendar_id in ((alice, ALICE_USER), (alice, staff_calendar), (bob, BOB_CALENDAR)):
        CalendarLink.objects.create(company=company, calendar_id=calendar_id)
    return World(google, alice, bob, alice_key, bob_key, alice_account, bob_account, staff_calendar, key)


@pytest.fixture
def routed(world, client, django_capture_on_commit_callbacks):
    """The sandbox's notifications reach /webhooks/gcal through Django's test client."""
    answers = []

    def sink(url: str, headers: dict[str, str], body: bytes):
        parts = urlsplit(url)
        extra = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
        with django_capture_on_commit_callbacks(execute=True):
            answer = client.post(
                f"{parts.path}?{parts.query}", data=body, content_type="application/json", **extra
            )
        answers.append(answer)
        return answer

    world.sandbox.sink = sink
    world.answers = answers
    return world


@pytest.fixture
def staff(world):
    """Anna, a stylist at Alice's main branch."""
    from askpro.models import Staff

    return Staff.objects.create(company=world.alice, branch=world.alice.branches.get(), name="Anna")
