"""Kept remote sessions (pool.py), against real SDK servers on 127.0.0.1 in both protocol eras:
reused across calls and threads (counted at the server: `initialize` requests and connections),
re-opened after the server restarts or the credential changes, closed when the registration is
disabled, bounded in number, and still bound by each call's deadline."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
from django.test import override_settings

from mcp_core.contracts import ErrorCode, MCPError
from mcp_core.pipeline import call_operation
from mcp_servers.federation.client import RemoteMCPClient
from mcp_servers.federation.pool import session_pool

from .conftest import TOKEN, Remote, platform, register

ERAS = ["legacy", "2026-07-28"]


def deadline(seconds: float = 10.0) -> SimpleNamespace:
    # call_tool needs only the time left of the call's deadline
    end = time.monotonic() + seconds
    return SimpleNamespace(remaining=lambda: max(0.0, end - time.monotonic()))


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in before}


@pytest.mark.parametrize("era", ERAS)
def test_it_reuses_one_session_for_calls_through_the_pipeline(remote, tenants, era):
    register(remote.url, slug="kept", era=era)
    session_pool().close_all()  # the sync above opened one already: count from none
    opened, before = session_pool().opened, remote.stats()

    def add(n: int) -> None:
        response = call_operation("fed_kept", "add", {"a": n, "b": 1}, principal=platform(), tenant="fed-a")
        assert response.success, response.error
        assert response.data == {"total": n + 1}

    add(0)
    first = remote.stats()
    # The handshake once (2026-07-28 has none); the legacy session may also open its GET stream.
    assert delta(before, first)["initialize"] == (1 if era == "legacy" else 0)
    for n in range(1, 5):
        add(n)
    more = delta(first, remote.stats())
    assert more["posts"] == 4  # one request per call: no handshake, no new connection
    assert (more["initialize"], more["connections"]) == (0, 0)
    assert session_pool().opened - opened == 1


@pytest.mark.parametrize("era", ERAS)
def test_it_shares_the_session_between_threads(remote, era):
    client = RemoteMCPClient(url=remote.url, era=era, registration=900_001, timeout=10)
    before = remote.stats()

    def call(n: int) -> str:
        return client.call_tool("echo", {"text": f"t{n}"}, deadline()).structured["text"]

    with ThreadPoolExecutor(max_workers=8) as threads:
        answers = list(threads.map(call, range(24)))
    assert answers == [f"t{n}" for n in range(24)]
    seen = delta(before, remote.stats())
    assert seen["initialize"] == (1 if era == "legacy" else 0)
    assert seen["posts"] >= 24
    assert session_pool().size() == 1


@pytest.mark.parametrize("era", ERAS)
def test_it_reconnects_after_the_server_is_killed(era):
    """A stateful server killed and started again no longer knows the session: it answers the
    old session id with 404 (not processed), and the call is sent again on a new session."""
    first = Remote("normal", FED_REMOTE_STATEFUL="1")
    client = RemoteMCPClient(url=first.url, era=era, registration=900_002, timeout=5)
    try:
        assert client.call_tool("echo", {"text": "one"}, deadline()).structured == {"text": "one"}
        opened = session_pool().opened
    finally:
        first.stop()
    second = Remote("normal", port=first.port, FED_REMOTE_STATEFUL="1")
    try:
        assert client.call_tool("add", {"a": 1, "b": 2}, deadline()).structured == {"total": 3}
        assert second.stats()["initialize"] == (1 if era == "legacy" else 0)
        assert session_pool().opened - opened == (1 if era == "legacy" else 0)
        # What the process does at exit: every session ends itself at the server (the one
        # the restart made stale too; the server answers that one 404).
        session_pool().close_all()
        assert second.stats()["deletes"] == (2 if era == "legacy" else 0)
    finally:
        second.stop()
    with pytest.raises(MCPError) as down:
        client.call_tool("echo", {"text": "down"}, deadline())
    assert down.value.details["problem"] == "remote_unreachable"


@pytest.fixture(scope="module")
def guarded():
    server = Remote("bearer")
    yield server
    server.stop()


@pytest.mark.parametrize("era", ERAS)
def test_it_opens_a_new_session_when_the_credential_changes(guarded, tenants, era):
    server = register(guarded.url, slug="cred", era=era, token=TOKEN)
    ok = call_operation("fed_cred", "echo", {"text": "a"}, principal=platform(), tenant="fed-a")
    assert ok.success, ok.error
    opened = session_pool().opened
    server.bearer_token = "a-rotated-token-the-server-does-not-know"
    server.save()
    refused = call_operation("fed_cred", "echo", {"text": "b"}, principal=platform(), tenant="fed-a")
    assert refused.error["code"] == "upstream_error"
    assert "refused the platform's credential" in refused.error["message"]
    server.bearer_token = TOKEN
    server.save()
    again = call_operation("fed_cred", "echo", {"text": "c"}, principal=platform(), tenant="fed-a")
    assert again.success, again.error
    # Each credential got a session of its own and the refused one was not kept. (A
    # 2026-07-28 session opens without a request, so the refused one opened first.)
    assert session_pool().opened - opened == (1 if era == "legacy" else 2)
    assert session_pool().size() == 1


def test_it_closes_the_sessions_of_a_disabled_registration(remote, tenants):
    server = register(remote.url, slug="gone")
    assert call_operation("fed_gone", "echo", {"text": "x"}, principal=platform(), tenant="fed-a").success
    assert session_pool().size() == 1
    server.enabled = False
    server.save()
    end = time.monotonic() + 5
    while session_pool().size() and time.monotonic() < end:
        time.sleep(0.02)
    assert session_pool().size() == 0


def test_it_keeps_no_more_sessions_than_the_pool_size(remote):
    with override_settings(FEDERATION_SESSION_POOL_SIZE=2):
        clients = [RemoteMCPClient(url=remote.url, era="legacy", registration=900_010 + n) for n in range(4)]
        for client in clients:
            client.call_tool("echo", {"text": "x"}, deadline())
        assert session_pool().size() == 2
        before = remote.stats()["initialize"]
        clients[-1].call_tool("echo", {"text": "kept"}, deadline())
        assert remote.stats()["initialize"] == before  # the most recent one stayed open


def test_it_closes_a_session_left_idle(remote):
    client = RemoteMCPClient(url=remote.url, era="legacy", registration=900_020)
    client.call_tool("echo", {"text": "x"}, deadline())
    opened = session_pool().opened
    with override_settings(FEDERATION_SESSION_IDLE_SECONDS=0.2):
        time.sleep(0.3)
        client.call_tool("echo", {"text": "y"}, deadline())
    assert session_pool().opened - opened == 1
    client.call_tool("echo", {"text": "z"}, deadline())  # not idle: kept
    assert session_pool().opened - opened == 1


@pytest.mark.parametrize("era", ERAS)
def test_it_holds_the_deadline_on_a_kept_session_and_recovers(remote, era):
    client = RemoteMCPClient(url=remote.url, era=era, registration=900_004, timeout=10)
    client.call_tool("echo", {"text": "warm"}, deadline())
    started = time.monotonic()
    with pytest.raises(MCPError) as late:
        client.call_tool("slow", {}, deadline(0.8))
    assert late.value.code == ErrorCode.TIMEOUT
    assert time.monotonic() - started < 3
    assert client.call_tool("echo", {"text": "after"}, deadline()).structured == {"text": "after"}


def test_it_opens_a_session_per_call_when_the_pool_is_off(remote):
    with override_settings(FEDERATION_SESSION_POOL_SIZE=0):
        client = RemoteMCPClient(url=remote.url, era="legacy", registration=900_005)
        before = remote.stats()["initialize"]
        for _ in range(2):
            client.call_tool("echo", {"text": "x"}, deadline())
        assert remote.stats()["initialize"] - before == 2
        assert session_pool().size() == 0
