"""The stream process as the Procfile runs it (uvicorn askpro.stream:application), on a free
port, on this test run's database and Redis key prefix, with the test settings' SECRET_KEY so
that the sessions the tests make are valid there. Stopped by pid."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings

import askpro.urls  # noqa: F401 - its patterns read LIVE_STREAM_URL once: before any test overrides it
from tests.production.conftest import ROOT, free_port, kill_group, production_env, stop, wait_http


def stream_env(**extra: str) -> dict[str, str]:
    return production_env(
        SECRET_KEY=settings.SECRET_KEY,
        LIVE_STREAM_HEARTBEAT_SECONDS="0.5",
        **extra,
    )


def start_stream(log: Path, **extra: str) -> SimpleNamespace:
    port = free_port()
    env = stream_env(STREAM_PORT=str(port), **extra)
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "askpro.stream:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--timeout-graceful-shutdown",
        "2",
    ]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/health/live", proc, log)
    except BaseException:
        kill_group(proc)
        raise
    return SimpleNamespace(proc=proc, base=base, port=port, log=log, env=env)


@pytest.fixture(scope="module")
def stream_server(django_db_setup, tmp_path_factory):
    server = start_stream(tmp_path_factory.mktemp("stream") / "stream.log", LIVE_STREAM_MAX_CLIENTS="4")
    try:
        yield server
    finally:
        stop(server.proc, timeout=15)


def stream_health(base: str) -> dict:
    with urllib.request.urlopen(base + "/health/live", timeout=5) as response:  # noqa: S310 - local
        return json.loads(response.read())


class SSE:
    """A raw HTTP/1.1 client for one stream: the status, the headers, then the events as read."""

    def __init__(self, port: int, *, cookie: str | None = None, headers: dict[str, str] | None = None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        lines = [f"GET {live_path()} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Accept: text/event-stream"]
        if cookie:
            lines.append(f"Cookie: {settings.SESSION_COOKIE_NAME}={cookie}")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buffer = b""
        head = self._until(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
        self.chunked = self.headers.get("transfer-encoding") == "chunked"
        self.text = ""

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("connection closed")
            self.buffer += data
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def _read_chunk(self) -> bytes:
        if not self.chunked:
            data, self.buffer = self.buffer, b""
            return data or self.sock.recv(65536)
        size = int(self._until(b"\r\n").split(b";")[0], 16)
        if size == 0:
            raise EOFError("stream ended")
        while len(self.buffer) < size + 2:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("connection closed")
            self.buffer += data
        chunk, self.buffer = self.buffer[:size], self.buffer[size + 2 :]
        return chunk

    def body(self) -> bytes:
        """The whole (short) body of a refused request."""
        length = int(self.headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self.buffer += self.sock.recv(65536)
        return self.buffer[:length]

    def next_event(self, *, timeout: float = 5.0, skip_comments: bool = True) -> dict:
        """The next event block: {"id", "event", "data"} (data parsed), or {"comment"}."""
        self.sock.settimeout(timeout)
        while "\n\n" not in self.text:
            self.text += self._read_chunk().decode()
        block, _, self.text = self.text.partition("\n\n")
        fields: dict = {}
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            if name == "":
                fields.setdefault("comment", value.strip())
            else:
                fields[name] = value[1:] if value.startswith(" ") else value
        if "data" in fields:
            fields["data"] = json.loads(fields["data"])
        if skip_comments and set(fields) <= {"comment", "retry"}:
            return self.next_event(timeout=timeout, skip_comments=skip_comments)
        return fields

    def close(self) -> None:
        self.sock.close()


def live_path() -> str:
    return settings.LIVE_STREAM_URL
