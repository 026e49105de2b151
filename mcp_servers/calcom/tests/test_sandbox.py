"""Contract tests on the Cal.com sandbox itself: it refuses what the real API refuses."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import requests

from mcp_core.management.commands.run_sandbox import discover_sandboxes
from mcp_servers.calcom.sandbox import DEMO_API_KEY, CalcomSandbox, sign_webhook

from .conftest import BERLIN, weekday_at

AUTH = {"Authorization": f"Bearer {DEMO_API_KEY}"}
BOOKINGS = {**AUTH, "cal-api-version": "2024-08-13"}


@pytest.fixture
def cal(sandbox):
    sandbox.reset()
    return sandbox


def _book(cal, start, **extra):
    body = {
        "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventTypeId": 1001,
        "attendee": {"name": "Jane", "email": "jane@example.com", "timeZone": "Europe/Berlin"},
        **extra,
    }
    return requests.post(f"{cal.url}/v2/bookings", json=body, headers=BOOKINGS, timeout=5)


def test_it_refuses_bookings_routes_without_the_version_header(cal):
    answer = requests.get(f"{cal.url}/v2/bookings", headers=AUTH, timeout=5)
    assert answer.status_code == 400
    body = answer.json()
    assert body["status"] == "error" and body["path"] == "/v2/bookings"
    assert body["error"]["code"] == "BadRequestException" and "cal-api-version" in body["error"]["message"]
    wrong = requests.get(
        f"{cal.url}/v2/bookings", headers={**AUTH, "cal-api-version": "2024-06-14"}, timeout=5
    )
    assert wrong.status_code == 400


def test_it_refuses_missing_and_wrong_credentials_like_cal(cal):
    for headers in ({}, {"Authorization": "Bearer cal_unknown"}, {"Authorization": f"Token {DEMO_API_KEY}"}):
        answer = requests.get(
            f"{cal.url}/v2/bookings", headers={**headers, "cal-api-version": "2024-08-13"}, timeout=5
        )
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "UnauthorizedException"
        assert "cal_unknown" not in answer.text


def test_it_wraps_success_in_the_envelope_and_pages_by_offset(cal):
    for hour in (9, 10, 11):
        assert _book(cal, weekday_at(hour)).status_code == 201
    answer = requests.get(
        f"{cal.url}/v2/bookings", params={"take": 2, "skip": 2}, headers=BOOKINGS, timeout=5
    )
    body = answer.json()
    assert body["status"] == "success" and len(body["data"]) == 1
    assert body["pagination"] == {
        "totalItems": 3,
        "remainingItems": 0,
        "returnedItems": 1,
        "itemsPerPage": 2,
        "currentPage": 2,
        "totalPages": 2,
        "hasNextPage": False,
        "hasPreviousPage": True,
    }
    bad = requests.get(f"{cal.url}/v2/bookings", params={"take": 0}, headers=BOOKINGS, timeout=5)
    assert bad.status_code == 400


def test_it_keys_slots_by_date_without_a_wrapper(cal):
    day = weekday_at(9).date().isoformat()
    answer = requests.get(
        f"{cal.url}/v2/slots",
        params={"eventTypeId": 1001, "start": day, "end": day, "timeZone": "Europe/Berlin"},
        headers={**AUTH, "cal-api-version": "2024-09-04"},
        timeout=5,
    )
    data = answer.json()["data"]
    assert list(data) == [day]
    assert data[day][0]["start"] in (f"{day}T09:00:00.000+01:00", f"{day}T09:00:00.000+02:00")
    assert "slots" not in data


def test_it_answers_429_with_rate_limit_headers_over_the_limit(cal):
    cal.rate_limit = 1
    try:
        ok = requests.get(f"{cal.url}/v2/me", headers=AUTH, timeout=5)
        limited = requests.get(f"{cal.url}/v2/me", headers=AUTH, timeout=5)
    finally:
        cal.rate_limit = 120
    assert ok.headers["X-RateLimit-Remaining-Default"] == "0"
    assert limited.status_code == 429
    assert limited.headers["X-RateLimit-Limit-Default"] == "1"
    assert int(limited.headers["X-RateLimit-Reset-Default"]) >= int(time.time())


def test_it_refuses_a_start_that_is_not_utc_and_a_taken_slot(cal):
    start = weekday_at(10)
    local = start.astimezone(BERLIN).isoformat()  # the same instant, but not written in UTC
    answer = requests.post(
        f"{cal.url}/v2/bookings",
        json={
            "start": local,
            "eventTypeId": 1001,
            "attendee": {"name": "J", "email": "j@x.io", "timeZone": "UTC"},
        },
        headers=BOOKINGS,
        timeout=5,
    )
    assert answer.status_code == 400
    assert _book(cal, start).status_code == 201
    taken = _book(cal, start)
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "ConflictException"


def test_it_reschedules_into_a_new_booking_and_cancels_the_old_one(cal):
    old = _book(cal, weekday_at(9)).json()["data"]
    answer = requests.post(
        f"{cal.url}/v2/bookings/{old['uid']}/reschedule",
        json={"start": weekday_at(9, 30).strftime("%Y-%m-%dT%H:%M:%SZ")},  # overlaps itself: allowed
        headers=BOOKINGS,
        timeout=5,
    )
    assert answer.status_code == 201
    new = answer.json()["data"]
    assert new["rescheduledFromUid"] == old["uid"]
    previous = requests.get(f"{cal.url}/v2/bookings/{old['uid']}", headers=BOOKINGS, timeout=5).json()["data"]
    assert previous["status"] == "cancelled" and previous["rescheduledToUid"] == new["uid"]


def test_it_hides_another_accounts_booking(cal):
    cal.add_account("cal_other_account")
    uid = _book(cal, weekday_at(9)).json()["data"]["uid"]
    other = {"Authorization": "Bearer cal_other_account", "cal-api-version": "2024-08-13"}
    assert requests.get(f"{cal.url}/v2/bookings/{uid}", headers=other, timeout=5).status_code == 404
    assert requests.post(f"{cal.url}/v2/bookings/{uid}/cancel", headers=other, timeout=5).status_code == 404


def test_it_signs_webhooks_as_cal_does(cal):
    received = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            return

    receiver = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        status = cal.send_webhook(
            f"http://127.0.0.1:{receiver.server_address[1]}/hook", "BOOKING_CREATED", {"uid": "u1"}, "s3cret"
        )
    finally:
        receiver.shutdown()
        receiver.server_close()
    assert status == 200
    headers, body = received[0]
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Cal-Signature-256"] == expected  # hex, no "sha256=" prefix, no timestamp
    payload = json.loads(body)
    assert payload["triggerEvent"] == "BOOKING_CREATED" and payload["payload"] == {"uid": "u1"}
    assert payload["createdAt"].endswith("Z")
    assert sign_webhook(body, "")["X-Cal-Signature-256"] == "no-secret-provided"


def test_it_describes_a_booking_as_a_webhook_payload(cal):
    booking = _book(cal, weekday_at(11)).json()["data"]
    payload = cal.webhook_payload(cal.bookings[booking["uid"]])
    assert payload["status"] == "ACCEPTED" and payload["uid"] == booking["uid"]
    assert payload["startTime"] == booking["start"] and payload["type"] == "consultation"


def test_it_is_discovered_by_run_sandbox():
    assert discover_sandboxes()["calcom"] is CalcomSandbox


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_it_is_served_by_run_sandbox_until_sigterm():
    port = _free_port()
    env = {**os.environ, "DEBUG": "1", "SANDBOX_CALCOM_PORT": str(port)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    root = Path(__file__).resolve().parents[3]
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_sandbox", "--only", "calcom"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90  # Django start-up is slow on a loaded 2-core machine
        answer = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/v2/me", headers=AUTH, timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        assert answer is not None and answer.status_code == 200, (
            process.stderr.read() if process.poll() else ""
        )
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert f"calcom -> http://127.0.0.1:{port}" in out and "Sandboxes stopped." in out


def test_it_holds_the_event_types_seed_demo_maps_in_its_demo_account():
    from askpro.demo import TENANTS
    from mcp_servers.calcom.sandbox import DEMO_MAPPED_EVENT_TYPES

    demo = CalcomSandbox()
    mapped = {1000 + t * 10 + b for t, spec in enumerate(TENANTS) for b in range(len(spec.branches))}
    assert mapped <= set(DEMO_MAPPED_EVENT_TYPES) <= set(demo.event_types)
    assert all(demo.event_types[i]["ownerId"] == demo.accounts[DEMO_API_KEY]["id"] for i in mapped)
