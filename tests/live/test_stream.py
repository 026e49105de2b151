"""The stream process end to end: events published on Redis (by this process, another process
than the stream's) reach an open stream as Server-Sent Events; who may open one; its bounds."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from mcp_core import live
from tests.production.conftest import ROOT, wait_for

from .conftest import SSE, live_path, stream_env, stream_health

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def session_of(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


@pytest.fixture
def operator_session(db) -> str:
    return session_of(get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-ops-1"))


def test_it_pushes_a_breaker_opened_in_another_process_to_an_open_stream(stream_server, operator_session):
    stream = SSE(stream_server.port, cookie=operator_session)
    try:
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["x-accel-buffering"] == "no"
        wait_for(lambda: stream_health(stream_server.base)["streams"] == 1, timeout=5)
        subprocess.run(
            [sys.executable, "-m", "tests.live.trip_breaker", "calcom"],
            cwd=ROOT,
            env=stream_env(DJANGO_SETTINGS_MODULE="askpro.settings"),
            check=True,
            timeout=60,
        )
        event = stream.next_event(timeout=10)
        assert event["event"] == "breaker"
        assert event["data"]["service"] == "calcom"
        assert (event["data"]["from"], event["data"]["to"]) == ("closed", "open")
        assert int(event["id"]) == event["data"]["id"] > 0
    finally:
        stream.close()


def test_it_refuses_a_stream_without_a_staff_session_holding_the_permission(stream_server, db):
    users = get_user_model().objects
    refused = {
        "no cookie": (None, 401),
        "a made-up session": ("x" * 32, 401),
        "not staff": (session_of(users.create_user("cust", password="pw-cust-1")), 403),
        "staff without the permission": (
            session_of(users.create_user("staff", password="pw-staff-1", is_staff=True)),
            403,
        ),
    }
    for name, (cookie, status) in refused.items():
        stream = SSE(stream_server.port, cookie=cookie)
        assert stream.status == status, name
        assert b"error" in stream.body(), name
        stream.close()
    granted = users.create_user("watcher", password="pw-watch-1", is_staff=True)
    granted.user_permissions.add(Permission.objects.get(codename="view_live_events"))
    stream = SSE(stream_server.port, cookie=session_of(granted))
    assert stream.status == 200
    stream.close()


def test_it_refuses_a_foreign_origin_and_serves_a_listed_one_with_cors(stream_server, operator_session):
    stream = SSE(stream_server.port, cookie=operator_session, headers={"Origin": "https://evil.example"})
    assert stream.status == 403
    stream.close()
    # Its own origin (no CORS needed).
    stream = SSE(
        stream_server.port,
        cookie=operator_session,
        headers={"Origin": f"http://127.0.0.1:{stream_server.port}"},
    )
    assert stream.status == 200 and "access-control-allow-origin" not in stream.headers
    stream.close()


def test_it_refuses_streams_beyond_its_bound_and_frees_a_place_when_one_closes(
    stream_server, operator_session
):
    wait_for(lambda: stream_health(stream_server.base)["streams"] == 0, timeout=10)
    streams = [SSE(stream_server.port, cookie=operator_session) for _ in range(4)]  # the bound: 4
    assert [s.status for s in streams] == [200] * 4
    extra = SSE(stream_server.port, cookie=operator_session)
    assert extra.status == 503 and extra.headers["retry-after"] == "30"
    extra.close()
    streams.pop().close()
    wait_for(lambda: stream_health(stream_server.base)["streams"] == 3, timeout=10)
    again = SSE(stream_server.port, cookie=operator_session)
    assert again.status == 200
    for s in [*streams, again]:
        s.close()


def test_it_replays_missed_events_by_last_event_id_and_asks_for_a_resync_beyond_the_backlog(
    stream_server, operator_session
):
    first = live.publish("recommendation", recommendation=1, analyzer="a", severity="low", title="one")
    second = live.breaker_changed("stripe", "closed", "open", "test")
    third = live.breaker_changed("stripe", "open", "half_open", "test")
    assert 0 < first < second < third
    stream = SSE(stream_server.port, cookie=operator_session, headers={"Last-Event-ID": str(first)})
    try:
        got = [stream.next_event(), stream.next_event()]
        assert [int(e["id"]) for e in got] == [second, third]
        assert got[1]["data"]["to"] == "half_open"
    finally:
        stream.close()
    # Further back than the backlog keeps: the page is told to read everything again.
    for _ in range(live.BACKLOG):
        live.publish("health", status="healthy", previous_status="healthy", changed={})
    stream = SSE(stream_server.port, cookie=operator_session, headers={"Last-Event-ID": str(first)})
    try:
        event = stream.next_event()
        assert event["event"] == "resync" and "id" not in event
    finally:
        stream.close()


def test_it_keeps_a_quiet_stream_alive_with_comment_lines(stream_server, operator_session):
    stream = SSE(stream_server.port, cookie=operator_session)
    try:
        started = time.monotonic()
        comments = []
        while len(comments) < 2:
            block = stream.next_event(skip_comments=False, timeout=5)
            if block.get("comment") == "keep-alive":
                comments.append(block)
        assert time.monotonic() - started < 5  # heartbeat 0.5 s here
    finally:
        stream.close()


def test_it_answers_only_its_own_paths(stream_server):
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(stream_server.base + "/admin/", timeout=5)  # noqa: S310 - local
    assert refused.value.code == 404


def test_it_answers_the_streams_path_on_the_web_process_with_no_stream_here(client):
    # A page opening the stream without a stream process behind the path (make run, a proxy not
    # yet routing it): 204 tells EventSource not to reconnect, and the page polls.
    response = client.get("/admin/live/events")
    assert response.status_code == 204


def test_it_ends_a_stream_at_its_maximum_age_so_a_withdrawn_right_takes_effect(tmp_path, operator_session):
    # The browser reconnects at once and the stream process checks the session and the
    # permission again; here only the end of the old stream is checked.
    from .conftest import start_stream, stop

    server = start_stream(tmp_path / "stream.log", LIVE_STREAM_MAX_AGE_SECONDS="1")
    try:
        stream = SSE(server.port, cookie=operator_session)
        assert stream.status == 200
        started = time.monotonic()
        with pytest.raises(EOFError):
            while time.monotonic() - started < 15:
                stream.next_event(skip_comments=False, timeout=5)
        assert time.monotonic() - started < 15
        stream.close()
    finally:
        stop(server.proc, timeout=15)


# Hostile values in every header the stream process reads (Cookie, Last-Event-ID, Origin, Host),
# as raw bytes on the wire: whatever the HTTP parser lets through reaches the application, which
# must answer with a 4xx of its own JSON shape (or uvicorn's 400), never a 500, and stay up.
_HOSTILE_STREAM_HEADERS = [
    ("Cookie", b"sessionid=\xff\xfe" + b"x" * 20),
    ("Cookie", b"sessionid=" + b"a" * 5000),
    ("Cookie", b'sessionid="\\x00"; other=\x01'),
    ("Cookie", b"=;;;===;sessionid"),
    ("Last-Event-ID", b"9" * 5000),
    ("Last-Event-ID", b"-1"),
    ("Last-Event-ID", b"1e9999"),
    ("Last-Event-ID", b"\xff\xfe"),
    ("Origin", b"http://\xff\xfe.example"),
    ("Origin", b"http://" + b"o" * 5000),
    ("Host", b"h" * 5000),
    ("Host", b"\xff"),
]


def _raw_status(port: int, path: str, header: str, value: bytes) -> tuple[int, bytes]:
    request = (
        f"GET {path} HTTP/1.1\r\n".encode()
        + (b"" if header == "Host" else f"Host: 127.0.0.1:{port}\r\n".encode())
        + header.encode()
        + b": "
        + value
        + b"\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received:
            data = sock.recv(65536)
            if not data:
                break
            received += data
    status_line = received.split(b"\r\n", 1)[0]
    return int(status_line.split()[1]), received


def test_it_answers_hostile_headers_on_the_stream_with_a_4xx_and_stays_up(stream_server):
    problems = []
    for header, value in _HOSTILE_STREAM_HEADERS:
        status, received = _raw_status(stream_server.port, live_path(), header, value)
        if not 400 <= status < 500:
            problems.append(f"{header} {value[:20]!r}: HTTP {status}")
        elif value in received and len(value) > 8:
            problems.append(f"{header} {value[:20]!r}: reflected")
    assert not problems, "\n".join(problems)
    assert stream_health(stream_server.base)["streams"] == 0
    assert b"Traceback" not in stream_server.log.read_bytes()
