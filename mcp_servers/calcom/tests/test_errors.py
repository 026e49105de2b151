"""Cal.com failures mapped to error codes, missing credentials, health, concurrent duplicates."""

from __future__ import annotations

import threading

import pytest

from askpro.models import Appointment
from mcp_core.health import HealthStatus
from mcp_core.registry import get_registry
from mcp_servers.calcom.client import CalcomClient
from mcp_servers.calcom.models import BookingRequest

from .conftest import booking_params, call, weekday_at


def test_it_maps_rejected_credentials_to_upstream_error_without_echoing_the_key(calcom, alice, alice_key):
    alice.calcom_api_key = "cal_wrong_secret_value"
    alice.save()
    response = call(alice_key, "get_event_types")
    assert response.error_code == "upstream_error"
    assert response.error["details"]["upstream_status"] == 401
    assert "cal_wrong_secret_value" not in str(response.to_dict())


def test_it_maps_an_unknown_event_type_to_not_found(calcom, alice, alice_key):
    calcom.add_account("cal_alice_own")
    alice.calcom_api_key = "cal_alice_own"
    alice.save()
    response = call(alice_key, "check_availability", {"event_type_id": 999})
    assert response.error_code == "not_found" and response.error["details"]["upstream_status"] == 404
    assert "NotFoundException" in response.error["message"]


def test_it_maps_cal_rate_limits_to_rate_limited_with_retry_after(calcom, alice, alice_key):
    calcom.rate_limit = 2
    try:
        assert call(alice_key, "test_connection").success
        assert call(alice_key, "test_connection").success
        limited = call(alice_key, "test_connection")
    finally:
        calcom.rate_limit = 120
    assert limited.error_code == "rate_limited"
    assert 1 <= limited.error["details"]["retry_after"] <= 60


def test_it_maps_a_server_error_to_upstream_error(calcom, alice, alice_key):
    calcom.inject_fault(path="^/v2/bookings$", status=500)
    response = call(alice_key, "create_booking", booking_params(weekday_at(9)))
    assert response.error_code == "upstream_error" and response.error["details"]["upstream_status"] == 500
    # No second POST: a booking is never retried blindly.
    assert len(calcom.requests_to("^/v2/bookings$")) == 1
    assert BookingRequest.objects.get(company=alice).status == "uncertain"


def test_it_retries_a_read_after_a_passing_503(calcom, alice, alice_key):
    calcom.inject_fault(path="^/v2/event-types$", status=503, count=1)
    response = call(alice_key, "get_event_types")
    assert response.success, response.error
    assert len(calcom.requests_to("^/v2/event-types$")) == 2


def test_it_maps_a_silent_upstream_to_timeout(calcom, alice, alice_key, monkeypatch):
    monkeypatch.setattr(CalcomClient, "read_timeout", 0.2)
    monkeypatch.setattr(CalcomClient, "max_retries", 0)
    calcom.inject_fault(path="^/v2/slots$", delay=0.6)
    response = call(alice_key, "check_availability", {"event_type_id": 42})
    assert response.error_code == "timeout"


def test_it_maps_a_malformed_answer_to_upstream_error(calcom, alice, alice_key):
    calcom.inject_fault(path="^/v2/me$", status=200, body={"unexpected": True})
    response = call(alice_key, "test_connection")
    assert response.error_code == "upstream_error" and "envelope" in response.error["message"]


def test_it_is_not_configured_without_any_key_and_never_invents_data(calcom, alice, alice_key, settings):
    settings.CALCOM_API_KEY = None
    server = get_registry().get_server("calcom")
    assert server.is_configured() is False
    for operation, params in [
        ("get_event_types", {}),
        ("check_availability", {"event_type_id": 42}),
        ("get_bookings", {}),
        ("create_booking", booking_params(weekday_at(9))),
        ("cancel_booking", {"booking_uid": "abc"}),
        ("confirm_booking", {"booking_uid": "abc"}),
        ("reschedule_booking", {"booking_uid": "abc", "start": weekday_at(10).isoformat()}),
        ("find_alternative_slots", {"event_type_id": 42, "preferred_start": weekday_at(9).isoformat()}),
        ("sync_event_types", {}),
        ("test_connection", {}),
    ]:
        response = call(alice_key, operation, params)
        assert response.error_code == "not_configured", (operation, response.error)
        assert response.data is None
    assert calcom.request_log == []
    assert not BookingRequest.objects.exists()
    from mcp_core.health import check_servers

    assert check_servers([server])["calcom"].status == HealthStatus.NOT_CONFIGURED


def test_it_is_configured_by_one_tenants_own_key_and_checks_health_with_it(calcom, alice, settings):
    settings.CALCOM_API_KEY = None
    calcom.add_account("cal_alice_own")
    alice.calcom_api_key = "cal_alice_own"
    alice.save()
    server = get_registry().get_server("calcom")
    assert server.is_configured() is True
    assert server.health().status == HealthStatus.HEALTHY
    assert calcom.requests_to("/v2/me")[-1].headers["authorization"] == "Bearer cal_alice_own"


def test_it_reports_health_from_an_authenticated_call(calcom, settings, db):
    server = get_registry().get_server("calcom")
    assert server.health().status == HealthStatus.HEALTHY
    settings.CALCOM_API_KEY = "cal_revoked_key"
    unhealthy = server.health()
    assert unhealthy.status == HealthStatus.UNHEALTHY and "401" in unhealthy.detail
    assert "cal_revoked_key" not in unhealthy.detail


@pytest.mark.django_db(transaction=True)
def test_it_books_once_when_duplicates_arrive_concurrently(calcom, alice, alice_key):
    from django.db import connection

    # Slow Cal.com down so that every duplicate arrives while the first is still booking.
    calcom.inject_fault(path="^/v2/bookings$", delay=0.4, count=1)
    params = booking_params(weekday_at(10))
    results = []

    def worker():
        try:
            results.append(call(alice_key, "create_booking", params, idempotency_key="dup-1"))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 5 and all(r.success for r in results), [r.error for r in results]
    assert len({r.data["booking"]["uid"] for r in results}) == 1
    assert sum(not r.data["replayed"] for r in results) == 1
    assert len(calcom.bookings) == 1 and len(calcom.requests_to("^/v2/bookings$")) == 1
    assert Appointment.objects.filter(company=alice, calcom_booking_uid__isnull=False).count() == 1
