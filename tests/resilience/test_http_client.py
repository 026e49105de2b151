"""The upstream HTTP client base (mcp_core.http) against a real local server with faults."""

from __future__ import annotations

import logging
import time

import pytest

from mcp_core.contracts import SYSTEM_PRINCIPAL, MCPError, MCPRequest, OperationContext
from mcp_core.http import UpstreamClient, http_pools, parse_retry_after
from mcp_core.pools import http_pool_report

from .dummy_upstream import DummyClient, DummySandbox

SECRET = "sk_test_SuperSecretValue_987654"


class Client(DummyClient):
    max_retries = 2


@pytest.fixture
def upstream():
    server = DummySandbox().start()
    yield server
    server.stop()


def client_for(upstream, **headers) -> Client:
    return Client(base_url=upstream.url, headers={"Authorization": f"Bearer {SECRET}", **headers})


def ctx(seconds: float = 5.0, request_id: str = "req-123") -> OperationContext:
    request = MCPRequest(
        service="dummy", operation="x", params={}, principal=SYSTEM_PRINCIPAL, request_id=request_id
    )
    return OperationContext(
        request=request, principal=SYSTEM_PRINCIPAL, tenant=None, deadline=time.monotonic() + seconds
    )


def error_of(func) -> MCPError:
    with pytest.raises(MCPError) as caught:
        func()
    return caught.value


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_it_retries_an_idempotent_request_on_a_retryable_status(upstream, status):
    upstream.inject_fault(status=status, count=2, headers={"Retry-After": "0"} if status == 429 else {})
    response = client_for(upstream).request("GET", "/items/x", ctx=ctx())
    assert response.json()["id"] == "x"
    assert len(upstream.request_log) == 3


def test_it_gives_up_after_max_retries_with_the_mapped_error(upstream):
    upstream.inject_fault(status=503)
    error = error_of(lambda: client_for(upstream).request("GET", "/items/x", ctx=ctx()))
    assert error.code == "upstream_error"
    assert error.details["upstream_status"] == 503
    assert len(upstream.request_log) == 3  # 1 + max_retries


@pytest.mark.parametrize("status", [500, 400, 401, 404, 409, 422])
def test_it_never_retries_a_status_that_is_not_retryable(upstream, status):
    upstream.inject_fault(status=status)
    error_of(lambda: client_for(upstream).request("GET", "/items/x", ctx=ctx()))
    assert len(upstream.request_log) == 1


def test_it_never_retries_a_non_idempotent_request(upstream):
    upstream.inject_fault(status=503)
    error = error_of(lambda: client_for(upstream).request("POST", "/items", json={"name": "a"}, ctx=ctx()))
    assert error.code == "upstream_error"
    assert len(upstream.request_log) == 1


def test_it_retries_a_post_that_carries_an_idempotency_key_in_any_case(upstream):
    upstream.inject_fault(status=502, count=1)
    response = client_for(upstream).request(
        "POST", "/items", json={"name": "a"}, headers={"idempotency-key": "k1"}, ctx=ctx()
    )
    assert response.status_code == 201
    assert len(upstream.request_log) == 2
    assert {r.headers["idempotency-key"] for r in upstream.request_log} == {"k1"}


def test_it_honours_retry_after_on_429(upstream):
    upstream.inject_fault(status=429, count=1, headers={"Retry-After": "1"})
    started = time.monotonic()
    client_for(upstream).request("GET", "/items/x", ctx=ctx())
    assert time.monotonic() - started >= 1.0
    assert len(upstream.request_log) == 2


def test_it_hands_a_long_retry_after_to_the_caller_instead_of_waiting(upstream):
    upstream.inject_fault(status=429, headers={"Retry-After": "120"})
    started = time.monotonic()
    error = error_of(lambda: client_for(upstream).request("GET", "/items/x", ctx=ctx()))
    assert time.monotonic() - started < 0.5
    assert error.code == "rate_limited"
    assert error.details["retry_after"] == 120
    assert len(upstream.request_log) == 1


def test_it_does_not_retry_when_the_wait_would_pass_the_deadline(upstream):
    upstream.inject_fault(status=429, headers={"Retry-After": "2"})
    error = error_of(lambda: client_for(upstream).request("GET", "/items/x", ctx=ctx(seconds=1.0)))
    assert error.code == "rate_limited"
    assert len(upstream.request_log) == 1


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "validation_error"),
        (422, "validation_error"),
        (404, "not_found"),
        (409, "conflict"),
        (401, "upstream_error"),
        (403, "upstream_error"),
        (500, "upstream_error"),
    ],
)
def test_it_maps_statuses_to_error_codes(upstream, status, code):
    upstream.inject_fault(status=status, body={"message": f"upstream says {status}"})
    error = error_of(lambda: client_for(upstream).request("GET", "/items/x", ctx=ctx()))
    assert error.code == code
    assert error.details["upstream_status"] == status
    if status not in (401, 403):
        assert f"upstream says {status}" in error.message


def test_it_maps_a_stalled_upstream_to_timeout_within_the_deadline(upstream):
    upstream.inject_fault(delay=3.0)
    started = time.monotonic()
    error = error_of(lambda: client_for(upstream).request("POST", "/items", json={}, ctx=ctx(seconds=0.4)))
    assert error.code == "timeout"
    assert time.monotonic() - started < 0.4 + 0.3


def test_it_maps_an_unreachable_upstream_to_upstream_error():
    from .conftest import free_port

    client = Client(base_url=f"http://127.0.0.1:{free_port()}")
    error = error_of(lambda: client.request("GET", "/items/x", ctx=ctx()))
    assert error.code == "upstream_error"
    assert "cannot be reached" in error.message


def test_it_passes_the_request_id_and_keeps_the_callers_own(upstream):
    client_for(upstream).request("GET", "/items/x", ctx=ctx(request_id="abc123"))
    client_for(upstream).request("GET", "/items/y", ctx=ctx(), headers={"x-request-id": "mine"})
    assert [r.headers.get("x-request-id") for r in upstream.request_log] == ["abc123", "mine"]


def test_it_never_logs_or_repeats_secrets(upstream, caplog):
    caplog.set_level(logging.DEBUG)
    client = client_for(upstream)
    error = error_of(lambda: client.request("GET", "/echo-auth", ctx=ctx()))
    upstream.inject_fault(status=503)
    error_of(lambda: client.request("GET", "/items/x", ctx=ctx()))
    assert upstream.request_log[0].headers["authorization"] == f"Bearer {SECRET}"  # it was sent
    assert SECRET not in error.message
    assert SECRET not in repr(client)
    assert SECRET not in caplog.text
    assert "upstream dummy GET /items/x -> 503" in caplog.text  # logging did happen


def test_it_does_not_follow_redirects_with_credentials(upstream):
    error = error_of(lambda: client_for(upstream).request("GET", "/redirect", ctx=ctx()))
    assert error.code == "upstream_error"
    assert "redirect" in error.message
    assert [r.path for r in upstream.request_log] == ["/redirect"]


def test_it_never_carries_cookies_from_one_call_to_the_next(upstream):
    client = client_for(upstream)
    client.request("GET", "/set-cookie", ctx=ctx())
    second = client.request("GET", "/set-cookie", ctx=ctx()).json()
    assert second["cookie"] is None


def test_it_reuses_one_pooled_session_and_connection_per_upstream(upstream):
    first, second = client_for(upstream), client_for(upstream)
    assert first.session is second.session
    assert (Client.service, upstream.url) in http_pools()
    for _ in range(5):
        first.request("GET", "/items/x", ctx=ctx())
        second.request("GET", "/items/y", ctx=ctx())
    row = next(r for r in http_pool_report() if r["base_url"] == upstream.url)
    (pool,) = row["pools"]
    assert pool["requests"] == 10
    assert pool["connections_opened"] == 1  # keep-alive: ten requests, one connection
    assert pool["in_use"] == 0
    assert pool["idle"] == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2", 2.0), ("1.5", 1.5), ("0", 0.0), ("-1", None), ("soon", None), ("", None), (None, None)],
)
def test_it_parses_retry_after(value, expected):
    assert parse_retry_after(value) == expected


def test_it_parses_retry_after_as_an_http_date():
    from email.utils import formatdate

    seconds = parse_retry_after(formatdate(time.time() + 30, usegmt=True))
    assert 28 <= seconds <= 30


def test_it_keeps_timeouts_for_a_client_without_context(upstream):
    class Quick(UpstreamClient):
        service = "dummy-quick"
        read_timeout = 0.3
        max_retries = 0

    upstream.inject_fault(delay=2.0)
    started = time.monotonic()
    error = error_of(lambda: Quick(base_url=upstream.url).request("GET", "/items/x"))
    assert error.code == "timeout"
    assert time.monotonic() - started < 1.0
