"""A live server process for the MCP client tests: gunicorn on 127.0.0.1 (free port) serving
the test database, stopped by pid at the end of the module."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.db import connection

from mcp_core.registry import reset_registry_for_tests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process that must see this test run's database and cache."""
    name = connection.settings_dict["NAME"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "askpro.settings_test",
        "DEBUG": "1",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{name}",
        "TEST_DATABASE_NAME": name,
        "CACHE_KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", f"askpro-test-{os.getpid()}"),
        "DB_POOL": "0",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


@contextlib.contextmanager
def gunicorn_server(env: dict[str, str]):
    """gunicorn serving askpro on a free 127.0.0.1 port with `env`; yields the /mcp URL and
    stops the server (its process group, by pid) on the way out."""
    port = free_port()
    (ROOT / "var").mkdir(exist_ok=True)
    log_path = ROOT / "var" / f"mcp-live-{port}.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "askpro.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--access-logfile",
            "-",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url, timeout=1)
            except urllib.error.HTTPError as exc:
                if exc.code == 405:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise RuntimeError(f"gunicorn did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def live_server_url(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        env = child_env()
    with gunicorn_server(env) as url:
        yield url


@pytest.fixture
def fresh_registry():
    """Forget the registry before and after a test that changes MCP_SERVERS or plugins."""
    reset_registry_for_tests()
    yield
    reset_registry_for_tests()
