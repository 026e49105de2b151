"""Stripe's failures, as the real library raises them, mapped to MCP error codes."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from mcp_core.models import AuditEntry

from .conftest import PLATFORM_KEY

pytestmark = pytest.mark.django_db


def test_it_maps_a_rejected_key_to_upstream_error_without_showing_the_key(world, caplog):
    world.sandbox.revoked_keys.add(PLATFORM_KEY)
    caplog.set_level(logging.DEBUG)
    response = world.call("get_customer_payments")
    assert "upstream stripe retrieve customer -> 401" in caplog.text
    assert PLATFORM_KEY not in caplog.text
    assert response.error_code == "upstream_error"
    assert response.error["details"]["upstream_status"] == 401
    assert PLATFORM_KEY not in str(response.to_dict())
    assert "sk_test" not in response.error["message"]
    entry = AuditEntry.objects.filter(request_id=response.metadata["request_id"]).get()
    assert PLATFORM_KEY not in str(entry.__dict__)


def test_it_maps_a_missing_object_to_not_found(world):
    response = world.call("get_subscription", {"subscription_id": "sub_doesnotexist"})
    assert response.error_code == "not_found"
    assert response.error["details"]["field"] == "subscription_id"


def test_it_maps_an_idempotency_key_in_use_to_conflict(world):
    world.sandbox.inject_fault(
        status=409,
        path=r"^/v1/refunds$",
        body={"error": {"type": "invalid_request_error", "code": "idempotency_key_in_use",
                        "message": "There is currently another in-progress request using this Idempotent Key."}},
        headers={"Stripe-Should-Retry": "false"},
    )  # fmt: skip
    response = world.call("process_refund", {"charge_id": world.ids["alice_charge"]})
    assert response.error_code == "conflict"
    assert response.error["details"]["stripe_code"] == "idempotency_key_in_use"


def test_it_waits_out_a_brief_409_through_the_librarys_retry(world):
    world.sandbox.inject_fault(status=409, path=r"^/v1/refunds$", count=1)
    response = world.call("process_refund", {"charge_id": world.ids["alice_charge"], "amount": 1})
    assert response.success, response.error
    refunds = [r for r in world.sandbox.requests_to(r"^/v1/refunds$") if r.method == "POST"]
    assert len(refunds) == 2
    assert refunds[0].headers["idempotency-key"] == refunds[1].headers["idempotency-key"]


def test_it_maps_429_to_rate_limited_with_retry_after(world):
    world.sandbox.inject_fault(status=429, headers={"Retry-After": "7"}, path=r"^/v1/charges")
    response = world.call("get_customer_payments")
    assert response.error_code == "rate_limited"
    assert response.error["details"]["retry_after"] == 7.0


def test_it_maps_the_sandboxs_own_rate_limit_to_rate_limited(world):
    world.sandbox.rate_limit_per_second = 2
    time.sleep(1.0 - (time.time() % 1.0) + 0.01)  # start at the top of a second
    response = world.call("get_customer_payments")  # 3 requests in one second
    assert response.error_code == "rate_limited"
    assert response.error["details"]["retry_after"] == 1.0
    [limited] = [r for r in world.sandbox.request_log if r.path.startswith("/v1/")][2:3]
    assert limited.path == "/v1/invoices"


def test_it_retries_a_passing_5xx_and_maps_a_lasting_one_to_upstream_error(world):
    world.sandbox.inject_fault(status=500, path=r"^/v1/balance$", count=1)
    assert world.call("test_connection").success
    world.sandbox.inject_fault(status=503, path=r"^/v1/balance$", headers={"Stripe-Should-Retry": "false"})
    response = world.call("test_connection")
    assert response.error_code == "upstream_error"
    assert response.error["details"]["upstream_status"] == 503


def test_it_maps_a_slow_stripe_to_timeout_within_the_calls_deadline(world, settings):
    settings.MCP_DEFAULT_TIMEOUT = 0.8
    world.sandbox.inject_fault(delay=3.0, path=r"^/v1/balance$")
    started = time.monotonic()
    response = world.call("test_connection")
    elapsed = time.monotonic() - started
    assert response.error_code == "timeout"
    assert elapsed < 2.0  # the deadline, not the library's 80 s default or a retry after it
    assert len(world.sandbox.requests_to(r"^/v1/balance$")) == 1


def test_it_maps_an_unreachable_stripe_to_upstream_error(world, settings):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{port}"
    settings.MCP_DEFAULT_TIMEOUT = 1.5
    response = world.call("test_connection")
    assert response.error_code == "upstream_error"
    assert "cannot be reached" in response.error["message"]


def test_it_maps_a_bad_request_to_validation_error_naming_stripes_param(world):
    response = world.call("update_subscription", {"action": "change_plan", "price_id": "price_doesnotexist"})
    assert response.error_code == "not_found"
    world.sandbox.inject_fault(
        status=400,
        path=r"^/v1/invoices$",
        body={"error": {"type": "invalid_request_error", "code": "parameter_invalid_integer", "param": "due_date",
                        "message": "Invalid integer: x"}},
    )  # fmt: skip
    response = world.call("create_invoice", {"items": [{"description": "x", "amount": 1}]})
    assert response.error_code == "validation_error"
    assert response.error["details"]["field"] == "due_date"
