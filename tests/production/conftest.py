"""The production process layout under test: the Procfile's commands run as real processes on
the production settings (askpro.settings, DEBUG off), against this test run's PostgreSQL
database and its own Redis key prefix. Everything started here is stopped by pid."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SLOW_SERVER = "tests.production.slow_server.SlowServer"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def procfile() -> dict[str, str]:
    """The Procfile's process types and commands, read the way honcho reads them."""
    processes = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, sep, command = line.partition(":")
        if (
            sep
            and name.strip()
            and not name.startswith("#")
            and name.replace("-", "").replace("_", "").isalnum()
        ):
            processes[name.strip()] = command.strip()
    return processes


def database_url(*, port: int | None = None) -> str:
    """This test run's database, optionally through another port (a proxy in front of it)."""
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    # The test database's name (settings_test), also outside a test that holds the database.
    name = (s.get("TEST") or {}).get("NAME") or s["NAME"]
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{port or s['PORT'] or 5432}/{name}"


def production_env(**extra: str) -> dict[str, str]:
    """What an operator's environment file holds, pointed at this test run's database and cache."""
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DJANGO_SETTINGS_MODULE": "askpro.settings",
        "DEBUG": "0",
        "SECRET_KEY": "production-layout-tests-not-a-real-secret",
        "CREDENTIALS_ENCRYPTION_KEY": settings.CREDENTIALS_ENCRYPTION_KEY,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": database_url(),
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "CACHE_KEY_PREFIX": settings.CACHES["default"].get("KEY_PREFIX", f"askpro-test-{os.getpid()}"),
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("TEST_DATABASE_NAME", None)
    env.update(extra)
    return env


def start(command: str, *, env: dict[str, str], log: Path) -> subprocess.Popen:
    """One Procfile command in its own session, exec'd by the shell so that its pid is the process."""
    with log.open("ab") as out:
        return subprocess.Popen(
            ["/bin/sh", "-c", f"exec {command}"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen, *, timeout: float = 60) -> int:
    """SIGTERM to the process, SIGKILL to its group if it lingers; returns its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
    kill_group(proc)  # anything it left behind in its session (pool processes)
    return proc.returncode


def kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.wait(timeout=10)


def wait_http(url: str, proc: subprocess.Popen, log: Path, *, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2).read()  # noqa: S310 - local test server
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s:\n{log.read_text()[-3000:]}")


def wait_for(predicate, *, timeout: float = 30, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def start_web(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    """The Procfile's web process on a free port; returns it and its base URL once it is live."""
    port = free_port()
    proc = start(procfile()["web"], env={**env, "PORT": str(port)}, log=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/health/live", proc, log)
    except BaseException:
        kill_group(proc)
        raise
    return proc, base


class TCPProxy:
    """A TCP forwarder on 127.0.0.1 in front of PostgreSQL, so that a test can take the database
    away from a server process (and give it back) without touching the shared database server."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> TCPProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Refuse new connections and cut every open one: the database is unreachable."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture(scope="module")
def static_root(tmp_path_factory, django_db_setup) -> Path:
    """collectstatic's output for the production settings, as a release would make it."""
    root = tmp_path_factory.mktemp("static")
    result = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env=production_env(STATIC_ROOT=str(root)),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return root


def mcp_servers_with(*extra: str) -> str:
    return ",".join([*settings.MCP_SERVERS, *extra])
