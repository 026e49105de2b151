"""Several machines simulated on one: web instances (gunicorn), Celery workers and beats as
separate process groups on free ports, sharing one PostgreSQL database, one Redis and one broker;
private redis-servers and Redis Sentinels on free ports.

Everything here is started in a session of its own (start_new_session) and stopped through that
process group's id, which is the pid of the process we started: never the machine's shared
PostgreSQL, Redis or RabbitMQ, never anything by name. No pytest here: the benchmarks use it too.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
SETTINGS = "tests.cluster.proc_settings"
SECRET_KEY = "cluster-test-secret-key-not-for-production"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout}s")


class Proc:
    """One process (and its children) in a session of its own, with its output in a log file."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.cmd = cmd
        self.env = env
        self.log = log_dir / f"{name}.log"
        self.popen: subprocess.Popen | None = None

    def start(self) -> Proc:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.cmd, cwd=ROOT, env=self.env, stdout=out, stderr=out, start_new_session=True
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, chars: int = 3000) -> str:
        return f"--- {self.name} (pid {self.popen.pid if self.popen else '-'}) ---\n{self.output()[-chars:]}"

    def _signal_group(self, sig: int) -> None:
        # Our child leads its own session, so its process group id is its pid: this reaches
        # its children too (gunicorn's and Celery's workers) and nothing else.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (a warm shutdown), then SIGKILL if it lingers."""
        if self.popen is None:
            return
        if self.alive():
            self._signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        self.kill()

    def kill(self) -> None:
        """SIGKILL the whole group: a machine that dies without saying goodbye."""
        if self.popen is None:
            return
        self._signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)


# --- Redis ------------------------------------------------------------------------------------


class RedisServer(Proc):
    """A private redis-server on a free port (no persistence), optionally a replica of another."""

    def __init__(self, log_dir: Path, *, port: int | None = None, replica_of: int | None = None) -> None:
        self.port = port or free_port()
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        cmd += ["--appendonly", "no", "--dir", str(log_dir)]
        if replica_of is not None:
            cmd += ["--replicaof", "127.0.0.1", str(replica_of)]
        super().__init__(f"redis-{self.port}", cmd, dict(os.environ), log_dir)

    def start(self) -> RedisServer:
        super().start()
        wait_for(lambda: listening(self.port) or not self.alive(), 10, f"redis-server :{self.port}")
        if not self.alive():
            raise RuntimeError(self.tail())
        return self

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=2)

    def restarted(self) -> RedisServer:
        """A fresh, empty server on the same port (what a restart without persistence leaves)."""
        return RedisServer(self.log.parent, port=self.port).start()


class SentinelGroup:
    """A master, a replica and three sentinels (quorum 2) on free ports, with short timeouts so
    that a failover takes seconds: down-after-milliseconds and failover-timeout as given."""

    MASTER = "askpro-ha"

    def __init__(self, log_dir: Path, *, down_after_ms: int = 1000, failover_timeout_ms: int = 4000) -> None:
        self.log_dir = log_dir
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.master: RedisServer | None = None
        self.replica: RedisServer | None = None
        self.sentinels: list[Proc] = []
        self.sentinel_ports: list[int] = []

    def start(self) -> SentinelGroup:
        self.master = RedisServer(self.log_dir).start()
        self.replica = RedisServer(self.log_dir, replica_of=self.master.port).start()
        for _ in range(3):
            port = free_port()
            conf = self.log_dir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.log_dir}\n"
                f"sentinel monitor {self.MASTER} 127.0.0.1 {self.master.port} 2\n"
                f"sentinel down-after-milliseconds {self.MASTER} {self.down_after_ms}\n"
                f"sentinel failover-timeout {self.MASTER} {self.failover_timeout_ms}\n"
                f"sentinel parallel-syncs {self.MASTER} 1\n"
            )
            proc = Proc(
                f"sentinel-{port}", ["redis-server", str(conf), "--sentinel"], dict(os.environ), self.log_dir
            )
            self.sentinels.append(proc.start())
            self.sentinel_ports.append(port)
        for port in self.sentinel_ports:
            wait_for(lambda port=port: listening(port), 10, f"sentinel :{port}")
        wait_for(self.ready, 30, "sentinels know each other and the replica, replica in sync")
        return self

    def sentinel(self, port: int) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, decode_responses=True)

    def ready(self) -> bool:
        try:
            for port in self.sentinel_ports:
                info = self.sentinel(port).sentinel_master(self.MASTER)
                if int(info["num-other-sentinels"]) < 2 or int(info["num-slaves"]) < 1:
                    return False
            replication = self.replica.client().info("replication")
            return replication.get("master_link_status") == "up"
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def master_port(self) -> int | None:
        """The master's port as a majority of the sentinels name it now."""
        ports = []
        for port in self.sentinel_ports:
            try:
                address = self.sentinel(port).sentinel_get_master_addr_by_name(self.MASTER)
                ports.append(int(address[1]))
            except Exception:  # noqa: BLE001, S112 - a sentinel that does not answer has no vote
                continue
        for candidate in set(ports):
            if ports.count(candidate) >= 2:
                return candidate
        return None

    @property
    def sentinels_setting(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def broker_url(self, db: int = 1) -> str:
        return ";".join(f"sentinel://127.0.0.1:{port}/{db}" for port in self.sentinel_ports)

    def stop(self) -> None:
        for proc in [*self.sentinels, self.replica, self.master]:
            if proc is not None:
                proc.kill()


# --- the application's processes ---------------------------------------------------------------


def base_env(
    *, database_url: str, redis_url: str | None, broker_url: str | None, queue: str, **extra: str
) -> dict[str, str]:
    """Production settings (DEBUG off) plus the test-only bits of tests/cluster/proc_settings.py."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "PYTHONPATH": str(ROOT),
        "DEBUG": "0",
        "SECRET_KEY": SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url or "",
        "CACHE_KEY_PREFIX": f"cluster-{queue}",
        "CELERY_BROKER_URL": broker_url or "",
        "CELERY_TASK_ALWAYS_EAGER": "0" if broker_url else "1",
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "LOG_LEVEL": "WARNING",
        "DB_POOL_MIN_SIZE": "1",
    }
    for name in ("TEST_DATABASE_NAME", "CELERY_KEY_PREFIX"):
        env.pop(name, None)
    env.update(extra)
    return env


def web(name: str, env: dict[str, str], log_dir: Path, *, workers: int = 1, threads: int = 8) -> Proc:
    port = free_port()
    cmd = [PYTHON, "-m", "gunicorn", "askpro.wsgi:application", "-w", str(workers), "--threads", str(threads)]
    cmd += ["-b", f"127.0.0.1:{port}", "--log-level", "warning", "--graceful-timeout", "5"]
    proc = Proc(name, cmd, env, log_dir)
    proc.base = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    return proc


def worker(name: str, env: dict[str, str], log_dir: Path, *, concurrency: int = 2) -> Proc:
    cmd = [PYTHON, "-m", "celery", "-A", "askpro", "worker", "-P", "threads", "-c", str(concurrency)]
    cmd += ["-Q", env["CELERY_TASK_DEFAULT_QUEUE"], "-n", f"{name}@%h", "--without-gossip"]
    cmd += ["--without-mingle", "-l", "INFO"]
    return Proc(name, cmd, env, log_dir)


def beat(name: str, env: dict[str, str], log_dir: Path, *, max_interval: int = 1) -> Proc:
    cmd = [PYTHON, "-m", "celery", "-A", "askpro", "beat", "-l", "INFO", "--max-interval", str(max_interval)]
    cmd += ["-s", str(log_dir / f"{name}-schedule")]  # unused by the database scheduler
    return Proc(name, cmd, env, log_dir)


def wait_web(proc: Proc, timeout: float = 60) -> None:
    def up() -> bool:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited\n{proc.tail()}")
        try:
            urllib.request.urlopen(proc.base + "/api/v1/mcp/services", timeout=1)  # type: ignore[attr-defined]  # noqa: S310
        except urllib.error.HTTPError:
            return True  # 401: the application answers
        except OSError:
            return False
        return True

    wait_for(up, timeout, f"{proc.name} answering", interval=0.2)


def wait_log(proc: Proc, text: str, timeout: float = 60, count: int = 1) -> None:
    def seen() -> bool:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited\n{proc.tail()}")
        return proc.output().count(text) >= count

    wait_for(seen, timeout, f"{proc.name}: {text!r}", interval=0.2)


def start_all(procs: Iterable[Proc]) -> None:
    """Start side by side, then wait for each to be ready (web: answers; worker: ready; beat: up)."""
    procs = list(procs)
    for proc in procs:
        proc.start()
    for proc in procs:
        if hasattr(proc, "base"):
            wait_web(proc)
        elif " worker " in f" {' '.join(proc.cmd)} ":
            wait_log(proc, " ready.")
        elif " beat " in f" {' '.join(proc.cmd)} ":
            wait_log(proc, "beat: Starting...")


def stop_all(procs: Iterable[Proc], timeout: float = 15.0) -> None:
    """SIGTERM to every one at once, then wait; SIGKILL whatever lingers."""
    procs = [proc for proc in procs if proc.popen is not None]
    for proc in procs:
        if proc.alive():
            proc._signal_group(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        proc.kill()


DUMMY_FETCH = {"service": "dummy", "operation": "fetch", "params": {}}


def call(base: str, key: str, *, body: dict | None = None, timeout: float = 20) -> tuple[int, dict, dict]:
    """POST /api/v1/mcp/call (the dummy server's fetch unless `body` says otherwise);
    (status, headers, body)."""
    request = urllib.request.Request(
        base + "/api/v1/mcp/call",
        data=json.dumps(body or DUMMY_FETCH).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - local
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, dict(exc.headers), json.loads(body)
        except ValueError:
            return exc.code, dict(exc.headers), {"raw": body[:200].decode(errors="replace")}
    except OSError as exc:
        return 0, {}, {"transport_error": type(exc).__name__}


class Load:
    """A bounded request loop against every instance from a few threads: (monotonic time, base,
    status, whether the limiter decided: the RateLimit header) for each answer."""

    def __init__(
        self,
        bases: list[str],
        key: str,
        *,
        body: dict | None = None,
        threads: int = 4,
        max_seconds: float = 60,
    ) -> None:
        self.bases, self.key, self.body = bases, key, body
        self.results: list[tuple[float, str, int, bool]] = []
        self.stop_at = time.monotonic() + max_seconds
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, index: int) -> None:
        i = index
        while not self.stopped.is_set() and time.monotonic() < self.stop_at:
            base = self.bases[i % len(self.bases)]
            status, headers, _ = call(base, self.key, body=self.body, timeout=10)
            with self.lock:
                self.results.append((time.monotonic(), base, status, "RateLimit" in headers))
            i += 1

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join(timeout=15)

    def since(self, t: float) -> list[tuple[float, str, int, bool]]:
        with self.lock:
            return [r for r in self.results if r[0] > t]


def post_raw(base: str, path: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(
        base + path, data=body, headers={"Content-Type": "application/json", **headers}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:  # noqa: S310 - local
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def log_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
