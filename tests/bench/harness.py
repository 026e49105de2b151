"""Shared bench plumbing: a throw-away PostgreSQL database, a gunicorn process on a free port,
and a load generator (wrk when installed, else a Python keep-alive client).

Everything started here is stopped by pid; the machine's PostgreSQL and Redis are only used,
never reconfigured (the bench database is created and dropped by name).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _psql(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        conn.execute(sql)


@contextlib.contextmanager
def bench_database(name: str | None = None, *, keep: bool = False) -> Iterator[str]:
    """Create a migrated PostgreSQL database, yield its URL, drop it afterwards.

    A new database is a copy of a migrated template (see _migrated_template): a file copy on
    the server instead of a migrate run (about 10 s, longer under load) every time.
    keep: use the named database as it is (created if missing, migrated) and leave it there,
    so that a bench can be run again on the data of the run before."""
    name = name or f"askpro_bench_{os.getpid()}"
    if not re.fullmatch(r"[a-z0-9_]{1,63}", name):
        raise ValueError(f"bench database name {name!r}: lower-case letters, digits and _ only")
    if not keep:
        _psql(f'DROP DATABASE IF EXISTS "{name}"')
    url = f"postgres://postgres@127.0.0.1:5432/{name}"
    if not keep or not _database_exists(name):
        _create_from_template(name, _migrated_template())
    else:
        run_manage(["migrate", "--noinput", "-v0"], database_url=url)  # kept data, newer migrations
    try:
        yield url
    finally:
        if not keep:
            _psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _migrations_digest() -> str:
    """What a migrated database depends on: every migration of the project and the pinned
    versions of the libraries whose apps bring their own."""
    digest = hashlib.sha256((ROOT / "constraints.txt").read_bytes())
    # Every app of the project, top-level (askpro/, notifications/) or a server (mcp_servers/x/).
    paths = [*ROOT.glob("*/migrations/*.py"), *ROOT.glob("*/*/migrations/*.py")]
    for path in sorted(paths):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _migrated_template() -> str:
    """The name of a database migrated to this checkout's migrations, built on first use and
    kept on the server under a name carrying their digest (a changed migration makes a new
    one). Nobody connects to it but `CREATE DATABASE ... TEMPLATE`; concurrent first uses
    each build their own copy and the first rename wins."""
    import psycopg

    name = f"askpro_template_{_migrations_digest()}"
    if _database_exists(name):
        return name
    building = f"{name}_{os.getpid()}"
    _psql(f'DROP DATABASE IF EXISTS "{building}"')
    _psql(f'CREATE DATABASE "{building}"')
    try:
        run_manage(
            ["migrate", "--noinput", "-v0"], database_url=f"postgres://postgres@127.0.0.1:5432/{building}"
        )
        _psql(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
    except psycopg.errors.DuplicateDatabase:
        pass  # another run built it meanwhile
    finally:
        _psql(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
    return name


def _create_from_template(name: str, template: str) -> None:
    import psycopg

    # PostgreSQL refuses to copy a template while another copy of it is being made.
    for attempt in range(50):
        try:
            _psql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            return
        except psycopg.errors.ObjectInUse:
            if attempt == 49:
                raise
            time.sleep(0.1)


def _database_exists(name: str) -> bool:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def bench_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "CACHE_KEY_PREFIX": f"askpro-bench-{os.getpid()}",
        "DJANGO_SETTINGS_MODULE": "tests.bench.settings",
        "DEBUG": "0",
        "SECRET_KEY": "bench-secret-key-not-for-production",
        "CREDENTIALS_ENCRYPTION_KEY": "i1hm3y-QqX-fg3mG3M6G1UrI9ZVnRXHZqXp3ZmY2yE4=",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
    }
    env.update(extra)
    return env


def run_manage(args: list[str], *, database_url: str, **extra: str) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=bench_env(database_url, **extra),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


@contextlib.contextmanager
def gunicorn(
    database_url: str,
    *,
    workers: int = 2,
    threads: int | None = None,
    app: str = "askpro.wsgi:application",
    **extra: str,
) -> Iterator[str]:
    """gunicorn on a free port with DEBUG off; yields its base URL; stops it by pid.

    threads > 1 uses gthread workers (BENCH_THREADS sets the default for every bench), so
    that waits on PostgreSQL and Redis overlap the way a production deployment would run.
    """
    port = free_port()
    threads = threads if threads is not None else int(os.environ.get("BENCH_THREADS", "1"))
    command = [
        PYTHON,
        "-m",
        "gunicorn",
        app,
        "-w",
        str(workers),
        "-b",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
    ]
    command += ["--threads", str(threads)] if threads > 1 else []
    with served(
        command, env=bench_env(database_url, **extra), probe=f"http://127.0.0.1:{port}/bench/bare"
    ) as base:
        yield base


@contextlib.contextmanager
def served(command: list[str], *, env: dict[str, str], probe: str, any_answer: bool = False) -> Iterator[str]:
    """Run a server process, wait until `probe` answers, yield its base URL, stop it by pid.

    any_answer: an HTTP error status counts as up (a server that refuses a bare GET).
    Its stderr goes to a temporary file, never a pipe: a pipe nobody reads after start-up
    fills with a chatty server's log lines and then blocks the server mid-request."""
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
        parts = urllib.parse.urlsplit(probe)
        try:
            wait_until_up(probe, proc, any_answer=any_answer, log=log)
            yield f"{parts.scheme}://{parts.netloc}"
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_until_up(
    url: str, proc: subprocess.Popen, timeout: float = 30, *, any_answer: bool = False, log: Any = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            said = b""
            if log is not None:
                log.seek(0)
                said = log.read()
            elif proc.stderr:
                said = proc.stderr.read()
            raise RuntimeError(f"server exited: {said.decode(errors='replace')[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=1).read()  # noqa: S310 - local bench server
            return
        except urllib.error.HTTPError:
            if any_answer:
                return
            time.sleep(0.2)
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server did not come up at {url}")


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


_WRK_LUA = """
wrk.method = "{method}"
wrk.body = {body}
{headers}
done = function(summary, latency, requests)
  io.write(string.format("JSON {{\\"requests\\": %d, \\"duration_us\\": %d, \\"errors\\": %d, \\"non2xx\\": %d, \\"p50_us\\": %d, \\"p99_us\\": %d}}\\n",
    summary.requests, summary.duration, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(99)))
end
"""


def load(
    url: str,
    *,
    method: str = "GET",
    body: str | None = None,
    headers: dict[str, str] | None = None,
    seconds: int = 8,
    connections: int = 16,
) -> dict[str, float]:
    """Drive `url` and return requests/s, p50 and p99 (ms) and the error count."""
    if have_wrk():
        header_lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in (headers or {}).items())
        script = _WRK_LUA.format(
            method=method, body=json.dumps(body) if body is not None else "nil", headers=header_lines
        )
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
            handle.write(script)
        try:
            out = subprocess.run(
                ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", handle.name, url],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        finally:
            os.unlink(handle.name)
        data = json.loads(re.search(r"JSON (\{.*\})", out).group(1))
        return {
            "requests": data["requests"],
            "rps": data["requests"] / (data["duration_us"] / 1e6),
            "p50_ms": data["p50_us"] / 1000,
            "p99_ms": data["p99_us"] / 1000,
            "errors": data["errors"] + data["non2xx"],
        }
    return _python_load(
        url, method=method, body=body, headers=headers or {}, seconds=seconds, connections=connections
    )


def _python_load(url, *, method, body, headers, seconds, connections):
    """Fallback load generator: threads with keep-alive connections (weaker than wrk)."""
    import http.client
    import threading
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    latencies: list[float] = []
    errors = [0]
    stop_at = time.monotonic() + seconds
    lock = threading.Lock()

    def worker():
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        local = []
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                conn.request(method, parts.path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status >= 300:
                    errors[0] += 1
            except Exception:
                errors[0] += 1
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
            local.append(time.perf_counter() - started)
        with lock:
            latencies.extend(local)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    latencies.sort()
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else 0,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else 0,
        "errors": errors[0],
    }
