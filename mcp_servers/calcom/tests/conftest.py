"""A live Cal.com sandbox per test module, reset before each test, with settings pointing at it."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from mcp_core.api_keys import api_key_authenticate
from mcp_core.pipeline import call_operation
from mcp_servers.calcom.sandbox import DEMO_API_KEY, CalcomSandbox

BERLIN = ZoneInfo("Europe/Berlin")
MAPPED_EVENT_TYPE = 42  # conftest.make_tenant maps every tenant's branch to event type 42


@pytest.fixture(scope="module")
def sandbox():
    server = CalcomSandbox().start()
    yield server
    server.stop()


@pytest.fixture
def calcom(sandbox, settings):
    """The sandbox, empty but for the demo account (shared platform key) and event type 42."""
    sandbox.reset()
    sandbox.add_event_type(DEMO_API_KEY, title="Consultation", slug="consult", length=30, event_type_id=42)
    settings.CALCOM_BASE_URL = sandbox.url
    settings.CALCOM_API_KEY = DEMO_API_KEY
    return sandbox


def call(key: str, operation: str, params: dict | None = None, **kwargs):
    return call_operation("calcom", operation, params or {}, principal=api_key_authenticate(key), **kwargs)


def weekday_at(hour: int, minute: int = 0, *, days_ahead: int = 2) -> dt.datetime:
    """A Monday-Friday at least `days_ahead` days from now, at hour:minute Berlin time, as UTC."""
    day = dt.datetime.now(BERLIN).date() + dt.timedelta(days=days_ahead)
    while day.isoweekday() > 5:
        day += dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(hour, minute), BERLIN).astimezone(dt.UTC)


def booking_params(start: dt.datetime, **overrides) -> dict:
    params = {
        "event_type_id": MAPPED_EVENT_TYPE,
        "start": start.isoformat(),
        "name": "Jane Roe",
        "email": "jane@example.com",
    }
    params.update(overrides)
    return params
