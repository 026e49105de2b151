"""The sandbox base (mcp_core.sandbox.SandboxServer): HTTP/1.1 keep-alive from one event loop,
a stalled request holding up only itself, and a stop that closes its clients' connections."""

from __future__ import annotations

import socket
import threading

import pytest
import requests

from .dummy_upstream import DummySandbox


@pytest.fixture
def sandbox():
    server = DummySandbox().start()
    yield server
    server.stop()


def test_it_answers_many_requests_on_one_kept_alive_connection(sandbox):
    with requests.Session() as session:
        answers = [session.get(f"{sandbox.url}/items/{i}", timeout=5) for i in range(3)]
        assert [a.json()["id"] for a in answers] == ["0", "1", "2"]
        assert all(a.headers.get("Connection", "").lower() != "close" for a in answers)
    assert len(sandbox.requests_to(r"^/items/")) == 3


def test_a_stalled_request_holds_up_only_itself(sandbox):
    sandbox.inject_fault(path=r"^/items/slow$", delay=1.5, count=1)
    slow: list[requests.Response] = []
    waiting = threading.Thread(
        target=lambda: slow.append(requests.get(f"{sandbox.url}/items/slow", timeout=10))
    )
    waiting.start()
    quick = requests.get(f"{sandbox.url}/items/quick", timeout=1)  # within the stall: not queued behind it
    assert quick.json()["id"] == "quick" and waiting.is_alive()
    waiting.join(timeout=10)
    assert slow[0].json()["id"] == "slow"


def test_stopping_closes_the_clients_connections_and_the_port(sandbox):
    client = socket.create_connection(("127.0.0.1", sandbox.port), timeout=5)
    client.sendall(b"GET /items/1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert client.recv(4096).startswith(b"HTTP/1.1 200")
    port = sandbox.port
    sandbox.stop()
    assert client.recv(4096) == b""  # the server closed the kept-alive connection
    client.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
