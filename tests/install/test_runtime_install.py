"""The runtime install (`pip install -c constraints.txt .`, no dev extras) runs a Celery worker
and beat against Redis and against RabbitMQ.

The virtual environment is built once per (pyproject.toml, constraints.txt, Python) under the
system's temp directory and reused by later runs; each run then installs the project's current
code from a copy of the tree (`pip install --no-deps --target`) and puts it first on the path,
so the processes run today's code on exactly the runtime dependencies. Processes run in a
scratch directory (never the source tree), with production settings (DEBUG off), against
this run's test database, on a queue and key prefix of their own; they are stopped by pid and
what they left on the brokers is removed.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.db import connection

from dashboard.models import HealthCheckResult

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(tempfile.gettempdir()) / "askpro-runtime-venvs"
REDIS_DB = int(os.environ.get("TEST_RUNTIME_REDIS_DB", "2"))
REDIS = f"redis://127.0.0.1:6379/{REDIS_DB}"
RABBITMQ = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
# (mcp is a runtime dependency: the federation server's client.)
DEV_ONLY = ("pytest", "pytest_django", "playwright", "ruff")
_COPY_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    "var",
    ".tools",
    "test-output",
    "staticfiles",
    "*.egg-info",
    "__pycache__",
    ".make-*",
)


def _copy_tree(dest: Path) -> Path:
    """The project as `pip install .` would see it, outside the work tree (the build writes a
    build/ folder next to the sources)."""
    shutil.copytree(ROOT, dest, ignore=_COPY_IGNORE, symlinks=True)
    return dest


def _runtime_venv() -> Path:
    """A venv holding only the runtime install, built once per dependency set (under a lock:
    concurrent test runs share it)."""
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "constraints.txt"):
        digest.update((ROOT / name).read_bytes())
    digest.update(f"{sys.version}|{platform.machine()}".encode())
    venv = CACHE / digest.hexdigest()[:16]
    done = venv / ".complete"
    if done.exists():
        return venv
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return venv
        shutil.rmtree(venv, ignore_errors=True)  # a build that died half-way
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        with tempfile.TemporaryDirectory() as scratch:
            source = _copy_tree(Path(scratch) / "src")
            pip = subprocess.run(
                [
                    str(venv / "bin/pip"),
                    "install",
                    "--quiet",
                    "-c",
                    str(source / "constraints.txt"),
                    str(source),
                ],
                capture_output=True,
                text=True,
            )
        if pip.returncode != 0:
            pytest.fail(f"pip install . failed:\n{pip.stdout[-3000:]}\n{pip.stderr[-3000:]}")
        done.touch()
    return venv


@dataclass
class Runtime:
    venv: Path
    code: Path  # this run's project code, first on PYTHONPATH
    workdir: Path

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Runtime:
    venv = _runtime_venv()
    scratch = tmp_path_factory.mktemp("runtime")
    source = _copy_tree(scratch / "src")
    code = scratch / "code"
    pip = subprocess.run(
        [str(venv / "bin/pip"), "install", "--quiet", "--no-deps", "--target", str(code), str(source)],
        capture_output=True,
        text=True,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    shutil.rmtree(source)
    workdir = scratch / "run"
    workdir.mkdir()
    return Runtime(venv=venv, code=code, workdir=workdir)


def _python(
    runtime: Runtime, code: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [runtime.bin("python"), "-c", code],
        cwd=runtime.workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_it_ships_every_app_with_its_templates_and_static_files(runtime):
    """What `pip install .` puts in place holds each app package (a new top-level app must be
    listed in pyproject.toml) and the templates and static files inside the apps."""
    tracked = subprocess.run(
        ["git", "ls-files", "--", "*/templates/*", "*/static/*"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    in_apps = [path for path in tracked if not path.startswith(("templates/", "docs/", "tests/"))]
    assert len(in_apps) > 20  # the email templates among them
    missing = [path for path in in_apps if not (runtime.code / path).is_file()]
    assert missing == []
    for app in ("askpro", "mcp_core", "mcp_servers", "dashboard", "notifications"):
        assert (runtime.code / app / "__init__.py").is_file(), app


def test_it_installs_without_the_dev_tools(runtime):
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(runtime.code)}
    check = subprocess.run([runtime.bin("pip"), "check"], capture_output=True, text=True, env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    probe = _python(
        runtime,
        "import importlib.util as u, sys\n"
        f"print(','.join(m for m in {DEV_ONLY!r} if u.find_spec(m)))\n"
        # What a worker on either broker and the API docs need, importable from the install:
        "import kombu.transport.redis, kombu.transport.pyamqp, drf_spectacular_sidecar, askpro\n"
        "print(askpro.__file__)\n",
        env,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    dev, location = probe.stdout.rstrip("\n").split("\n")
    assert dev == "", f"dev-only packages in the runtime install: {dev}"
    assert location.startswith(str(runtime.code)), location


def _database_url() -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


class Processes:
    """The worker and beat of one test: started in the scratch directory, stopped by pid."""

    def __init__(self, runtime: Runtime, env: dict[str, str], tag: str) -> None:
        self.runtime, self.env, self.tag = runtime, env, tag
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        log = (self.runtime.workdir / f"{self.tag}-{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            [self.runtime.bin("celery"), "-A", "askpro", *args],
            cwd=self.runtime.workdir,
            env=env or self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def log(self, name: str) -> str:
        return (self.runtime.workdir / f"{self.tag}-{name}.log").read_text(errors="replace")

    def logs(self) -> str:
        return "\n".join(f"--- {name} ---\n{self.log(name)[-3000:]}" for name in self.procs)

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                pytest.fail(f"celery {name} exited with {proc.returncode}:\n{self.logs()}")

    def wait_for(self, what: str, predicate, timeout: float = 90.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            value = predicate()
            if value:
                return value
            time.sleep(0.25)
        pytest.fail(f"{what}: not within {timeout:.0f}s\n{self.logs()}")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _cleanup_redis(prefix: str, worker_log: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS)
    keys = list(client.scan_iter(match=f"{prefix}*", count=500))
    # Results of the tasks this worker ran (the round trip and beat's) are ours too.
    keys += [f"celery-task-meta-{task_id}" for task_id in set(re.findall(r"\[([0-9a-f-]{36})\]", worker_log))]
    if keys:
        client.delete(*keys)


def _require_rabbitmq() -> None:
    from kombu import Connection

    try:
        with Connection(RABBITMQ, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        pytest.fail(
            f"RabbitMQ is not reachable at {urlsplit(RABBITMQ).hostname}:{urlsplit(RABBITMQ).port or 5672} "
            f"({type(exc).__name__}); scripts/ensure_services.sh starts an installed one"
        )


def _cleanup_rabbitmq(queue: str) -> None:
    from kombu import Connection

    with Connection(RABBITMQ, connect_timeout=5) as conn:
        channel = conn.default_channel
        channel.queue_delete(queue)
        channel.exchange_delete(queue)  # celery declares an exchange named after the default queue


ROUND_TRIP = """
import django
django.setup()
from mcp_servers.queue.tasks import canary
result = canary.delay()
print(result.id)
print(result.get(timeout=80))
"""


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_it_runs_a_worker_and_beat_from_the_runtime_install(broker, runtime, transactional_db):
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    tag = f"askpro-rt-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    if broker == "redis":
        broker_env = {
            "CELERY_BROKER_URL": REDIS,
            "CELERY_RESULT_BACKEND": REDIS,
            "CELERY_KEY_PREFIX": f"{tag}:",
        }
    else:
        _require_rabbitmq()
        broker_env = {"CELERY_BROKER_URL": RABBITMQ, "CELERY_RESULT_BACKEND": "rpc://"}
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(runtime.workdir),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(runtime.code),
        "DJANGO_SETTINGS_MODULE": "askpro.settings",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(40),
        "CREDENTIALS_ENCRYPTION_KEY": "End74mnnIlAcXaUnHm5cCb0erJJmlxvz7l8CQ8Li4aM=",
        "DATABASE_URL": _database_url(),
        "DB_POOL": "0",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "CACHE_KEY_PREFIX": f"{tag}-cache",
        "CELERY_TASK_DEFAULT_QUEUE": tag,
        **broker_env,
    }
    # Beat's database scheduler finds this row and sends the task every second.
    every_second = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(
        name=f"{tag} health",
        task="dashboard.health_checks_run",
        interval=every_second,
        # No result to keep: with rpc:// it would go to a reply queue on RabbitMQ nobody reads.
        headers='{"ignore_result": true}',
    )
    assert not HealthCheckResult.objects.exists()

    procs = Processes(runtime, env, tag)
    try:
        procs.start(
            "worker", "worker", "-P", "threads", "-c", "2", "-Q", tag, "-n", f"{tag}@%h",
            "--without-gossip", "--without-mingle", "-l", "INFO",
        )  # fmt: skip
        # Beat reads no results: without a result backend it declares no rpc:// reply queue.
        beat_env = {key: value for key, value in env.items() if key != "CELERY_RESULT_BACKEND"}
        beat_pidfile = str(runtime.workdir / f"{tag}-beat.pid")
        procs.start("beat", "beat", "-l", "INFO", "--pidfile", beat_pidfile, env=beat_env)

        # A round trip from a producer of the runtime install: queued, run by the worker, answered.
        producer = subprocess.Popen(
            [runtime.bin("python"), "-c", ROUND_TRIP],
            cwd=runtime.workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.wait_for("the canary round trip", lambda: producer.poll() is not None)
        out, err = producer.communicate()
        assert producer.returncode == 0, f"{err[-3000:]}\n{procs.logs()}"
        task_id, answer = out.strip().splitlines()[-2:]
        assert answer == "ok"
        procs.wait_for(
            "the worker's record of the canary", lambda: f"[{task_id}] succeeded" in procs.log("worker")
        )

        # Beat, on the database scheduler, sends the periodic task; the worker runs it.
        procs.wait_for("beat's periodic health check", lambda: HealthCheckResult.objects.exists())
        beat_log = procs.log("beat")
        # The entry exists only as a database row: beat found it through the database scheduler.
        assert f"Sending due task {tag} health (dashboard.health_checks_run)" in beat_log, beat_log[-2000:]
        assert HealthCheckResult.objects.filter(service="database", status="healthy").exists()
    finally:
        procs.stop()
        worker_log = procs.log("worker") if "worker" in procs.procs else ""
        if broker == "redis":
            _cleanup_redis(f"{tag}:", worker_log)
        else:
            _cleanup_rabbitmq(tag)
    for name, proc in procs.procs.items():
        assert proc.returncode is not None, f"{name} is still running"
