"""Every operation runs under its deadline: a slow one returns `timeout` and frees the caller."""

from __future__ import annotations

import time

import pytest

from mcp_core.contracts import MCPRequest
from mcp_core.models import AuditEntry
from mcp_core.pipeline import route

pytestmark = pytest.mark.django_db

MARGIN = 0.35  # seconds of slack for a loaded test machine


def call(principal, operation, **params):
    return route(MCPRequest(service="dummy", operation=operation, params=params, principal=principal))


def test_it_returns_timeout_for_a_stalled_upstream_within_the_deadline(dummy, principal):
    dummy.inject_fault(delay=5.0, path="/items/")
    started = time.monotonic()
    response = call(principal, "fetch_quick")  # declared timeout=0.5
    elapsed = time.monotonic() - started
    assert response.error["code"] == "timeout"
    assert elapsed < 0.5 + MARGIN
    entry = AuditEntry.objects.get(request_id=response.metadata["request_id"])
    assert entry.error_code == "timeout"


def test_it_ends_a_retried_upstream_call_at_the_deadline(dummy, principal):
    # Each attempt is slow but within the read timeout; retries must stop at the deadline.
    dummy.inject_fault(status=503, delay=0.2, path="/items/")
    started = time.monotonic()
    response = call(principal, "fetch_quick")
    assert response.error["code"] in ("timeout", "upstream_error")
    assert time.monotonic() - started < 0.5 + MARGIN


def test_it_returns_timeout_for_a_read_only_database_operation_past_its_deadline(dummy, principal):
    started = time.monotonic()
    response = call(principal, "db_sleep", seconds=5)  # declared timeout=0.3
    elapsed = time.monotonic() - started
    assert response.error["code"] == "timeout"
    assert elapsed < 0.3 + MARGIN
    # The connection is usable afterwards (the statement was cancelled, not left running).
    assert call(principal, "db_sleep", seconds=0).success
