"""A live Sentry sandbox per test module, with settings pointing at it."""

from __future__ import annotations

import pytest
from django.test import override_settings

from mcp_core.contracts import Principal
from mcp_core.pipeline import call_operation
from mcp_servers.sentry.sandbox import DEMO_TOKEN, SentrySandbox

PLATFORM = Principal(kind="api_key", name="key:test", scopes=frozenset({"sentry:read"}))


@pytest.fixture(scope="module")
def sandbox():
    with SentrySandbox() as server:
        yield server


@pytest.fixture
def sentry(sandbox, db):
    sandbox.clear_faults()
    sandbox.reset_rate_limit()
    with override_settings(SENTRY_BASE_URL=sandbox.url, SENTRY_AUTH_TOKEN=DEMO_TOKEN, SENTRY_ORG="askpro"):
        yield sandbox


def call(operation, **params):
    return call_operation("sentry", operation, params, principal=PLATFORM)
