"""The health vocabulary, the checks, and the one service that runs them: run_checks_coalesced.

Live checks cost upstream calls (a hung upstream holds a check for its whole timeout), so no
caller runs them directly. run_checks_coalesced() runs one set at a time across processes (a
lock in the default cache: Redis in production, process memory under `make run`), serves a run
younger than MCP_HEALTH_REUSE_SECONDS from the database instead of running again, and stores
every run (HealthRun, whole; ServiceHealth, per server, for the dashboard). A server whose
circuit breaker is open is reported from the breaker without calling its upstream.
Anonymous `/health/` reads only the newest run's aggregate (health_summary). docs/health.md.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from datetime import timedelta as td
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.cache import caches
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.utils import timezone

from . import live
from .contracts import MCPError

if TYPE_CHECKING:
    from .models import HealthRun
    from .server import MCPServer

logger = logging.getLogger(__name__)


class HealthStatus(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    NOT_CONFIGURED = "not_configured"


# What a caller is told before any run was ever stored: a fact about our knowledge, not a
# service status, so it is not part of HealthStatus.
UNKNOWN = "unknown"
DEFAULT_TIMEOUT = 5.0
RUNS_KEPT = 100
# The lock outlives the checks' timeout by this much (storing the run), and expires on its own
# if the process holding it dies.
LOCK_MARGIN_SECONDS = 10.0
_LOCK_KEY = "mcp:health:run-lock"

_SEVERITY = {
    HealthStatus.HEALTHY: 0,
    HealthStatus.NOT_CONFIGURED: 0,
    HealthStatus.DEGRADED: 1,
    HealthStatus.UNHEALTHY: 2,
}


@dataclass(slots=True)
class HealthResult:
    status: HealthStatus
    detail: str = ""
    latency_ms: float | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": str(self.status),
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 2),
            "detail": self.detail[:2000],
        }

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> HealthResult:
        return cls(HealthStatus(stored["status"]), stored.get("detail", ""), stored.get("latency_ms"))


# A probe slower than this makes an otherwise answering service degraded.
SLOW_PROBE_SECONDS = 1.0


def probe_credentials(
    checks: list[Any], probe: Callable[[Any], None], *, describe: Callable[[Any], str], answered: str
) -> HealthResult:
    """Health of an outside API from a few credentials (a tenant's or the platform's): probe(check)
    makes one cheap authenticated request and raises MCPError when it fails.
    Healthy when every probe answered in time; degraded when some failed or the slowest took
    SLOW_PROBE_SECONDS or more; unhealthy when all failed. describe(check) names the failing
    credential's owner, never the credential; answered says what "{n}" answered."""
    started = time.perf_counter()
    failures, slowest = [], 0.0
    for check in checks:
        one = time.perf_counter()
        try:
            probe(check)
        except MCPError as exc:
            failures.append(f"{describe(check)}: {exc.message}")
        slowest = max(slowest, time.perf_counter() - one)
    latency = (time.perf_counter() - started) * 1000
    if failures:
        status = HealthStatus.UNHEALTHY if len(failures) == len(checks) else HealthStatus.DEGRADED
        return HealthResult(status, "; ".join(failures), latency_ms=latency)
    if slowest >= SLOW_PROBE_SECONDS:
        return HealthResult(
            HealthStatus.DEGRADED, f"answers, but slowly ({slowest * 1000:.0f} ms)", latency_ms=latency
        )
    return HealthResult(HealthStatus.HEALTHY, answered.format(n=len(checks)), latency_ms=latency)


def worst_status(results: Iterable[HealthResult]) -> HealthStatus:
    """The worst status among configured checks; not_configured is a fact, not a fault."""
    worst = HealthStatus.HEALTHY
    for result in results:
        if _SEVERITY[result.status] > _SEVERITY[worst]:
            worst = result.status
    return worst


def aggregate_status(results: dict[str, HealthResult]) -> HealthStatus:
    """The worst status among configured services; not_configured is a fact, not a fault."""
    return worst_status(results.values())


# --- the checks --------------------------------------------------------------------------------


def _timed(check: Callable[[], HealthResult]) -> HealthResult:
    started = time.perf_counter()
    try:
        result = check()
    except Exception as exc:  # a health check must never take the report down
        result = HealthResult(HealthStatus.UNHEALTHY, f"check failed: {type(exc).__name__}")
    finally:
        close_old_connections()
    if result.latency_ms is None:
        result.latency_ms = (time.perf_counter() - started) * 1000
    return result


def _run_concurrently(
    checks: dict[Any, Callable[[], HealthResult]], timeout: float
) -> dict[Any, HealthResult]:
    """Run every check at once, each bounded by `timeout` seconds.

    A check still running at the timeout is reported unhealthy and abandoned; its thread
    is a daemon of the pool and cannot hold the caller.
    """
    if not checks:
        return {}
    pool = ThreadPoolExecutor(max_workers=min(16, len(checks)), thread_name_prefix="health")
    futures = {key: pool.submit(_timed, check) for key, check in checks.items()}
    wait(futures.values(), timeout=timeout)
    results: dict[Any, HealthResult] = {}
    for key, future in futures.items():
        if future.done():
            results[key] = future.result()
        else:
            future.cancel()
            results[key] = HealthResult(
                HealthStatus.UNHEALTHY, f"check timed out after {timeout:g}s", latency_ms=timeout * 1000
            )
    pool.shutdown(wait=False, cancel_futures=True)
    return results


def _open_breaker(service: str) -> HealthResult | None:
    from .breaker import breaker_open_seconds  # the breaker imports the pipeline, which imports us

    seconds = breaker_open_seconds(service)
    if seconds is None:
        return None
    return HealthResult(
        HealthStatus.UNHEALTHY,
        f"circuit open: calls fail fast; the breaker lets a trial call through in {math.ceil(seconds)}s",
        data={"source": "breaker"},
    )


def _server_check(server: MCPServer, *, breakers: bool) -> HealthResult:
    if not server.is_configured():
        return HealthResult(HealthStatus.NOT_CONFIGURED, "no credentials configured")
    if breakers:
        # While the breaker refuses calls, every caller gets circuit_open: the service is
        # failing for them, whatever its upstream would say, and asking that upstream (perhaps
        # hung) is exactly what the breaker exists to avoid.
        refused = _open_breaker(server.name)
        if refused is not None:
            return refused
    return server.health()


def check_servers(
    servers: list[MCPServer], *, timeout: float = DEFAULT_TIMEOUT, breakers: bool = False
) -> dict[str, HealthResult]:
    """Run these servers' checks now, concurrently, each bounded by `timeout` seconds.

    With `breakers`, a server whose circuit breaker is open is reported from the breaker.
    Callers outside this module want run_checks_coalesced() instead.
    """
    return _run_concurrently(
        {server.name: partial(_server_check, server, breakers=breakers) for server in servers}, timeout
    )


def _database() -> HealthResult:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        return HealthResult(HealthStatus.UNHEALTHY, f"database unreachable ({type(exc).__name__})")
    return HealthResult(HealthStatus.HEALTHY, f"{connection.vendor} answered SELECT 1")


def _cache() -> HealthResult:
    cache = caches["default"]
    key, value = f"mcp:health:probe:{uuid.uuid4().hex}", uuid.uuid4().hex
    try:
        cache.set(key, value, timeout=10)
        readback = cache.get(key)
        cache.delete(key)
    except Exception as exc:  # noqa: BLE001 - any backend error; its text may hold the URL
        # Degraded, not unhealthy: rate limits and breakers fail open and calls still work.
        return HealthResult(
            HealthStatus.DEGRADED, f"cache unreachable ({type(exc).__name__}): limits and breakers fail open"
        )
    if readback != value:
        return HealthResult(HealthStatus.DEGRADED, "cache did not return the value it stored")
    return HealthResult(HealthStatus.HEALTHY, "stored and read back a value")


def _broker(timeout: float) -> HealthResult:
    from askpro.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:  # noqa: BLE001
        # The exception text may carry the broker URL with its password: name the type only.
        return HealthResult(HealthStatus.UNHEALTHY, f"broker unreachable ({type(exc).__name__})")
    return HealthResult(HealthStatus.HEALTHY, "accepted a connection")


def platform_checks(*, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Callable[[], HealthResult]]:
    """The control plane's own dependencies: database, cache, and the broker when one is used."""
    checks: dict[str, Callable[[], HealthResult]] = {"database": _database, "cache": _cache}
    if settings.CELERY_BROKER_URL and not settings.CELERY_TASK_ALWAYS_EAGER:
        checks["broker"] = partial(_broker, min(3.0, timeout))
    return checks


# --- snapshots: a run as callers see it --------------------------------------------------------


@dataclass
class HealthSnapshot:
    """A health run: its aggregate, when it ran, each result, and whether this call ran it."""

    status: str  # a HealthStatus, or UNKNOWN before any run was stored
    checked_at: datetime | None
    services: dict[str, HealthResult]
    platform: dict[str, HealthResult]
    source: str  # "live": this call ran the checks; "stored": a stored run was served
    run_in_progress: bool = False  # another caller's run was under way, so this one did not start one

    @property
    def age_seconds(self) -> float | None:
        if self.checked_at is None:
            return None
        return round(max(0.0, (timezone.now() - self.checked_at).total_seconds()), 1)

    def report(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "checked_at": self.checked_at.isoformat() if self.checked_at else None,
            "age_seconds": self.age_seconds,
            "source": self.source,
            "run_in_progress": self.run_in_progress,
            "services": {name: result.to_dict() for name, result in sorted(self.services.items())},
            "platform": {name: result.to_dict() for name, result in sorted(self.platform.items())},
        }


def _stored_snapshot(run: HealthRun | None, *, run_in_progress: bool = False) -> HealthSnapshot:
    if run is None:
        return HealthSnapshot(UNKNOWN, None, {}, {}, source="stored", run_in_progress=run_in_progress)
    return HealthSnapshot(
        run.status,
        run.checked_at,
        {name: HealthResult.from_dict(r) for name, r in run.services.items()},
        {name: HealthResult.from_dict(r) for name, r in run.platform.items()},
        source="stored",
        run_in_progress=run_in_progress,
    )


def latest_health_run() -> HealthRun | None:
    from .models import HealthRun

    return HealthRun.objects.order_by("-checked_at", "-id").first()


def _latest_or_none() -> HealthRun | None:
    try:
        return latest_health_run()
    except DatabaseError:
        # The database is down: run the checks (its own check will say so) rather than fail.
        logger.warning("health: the stored runs cannot be read; checking without them")
        return None


def health_summary() -> dict[str, Any]:
    """What anyone may see: the newest stored run's aggregate and its time. No names, no details,
    no live work; one indexed read."""
    from .models import HealthRun

    row = HealthRun.objects.order_by("-checked_at", "-id").values("status", "checked_at").first()
    if row is None:
        return {"status": UNKNOWN, "checked_at": None, "age_seconds": None}
    age = max(0.0, (timezone.now() - row["checked_at"]).total_seconds())
    return {
        "status": row["status"],
        "checked_at": row["checked_at"].isoformat(),
        "age_seconds": round(age, 1),
    }


# --- the coalesced run -------------------------------------------------------------------------

_local_lock = threading.Lock()
_lock_warned_at = 0.0


@contextmanager
def _run_lock(ttl: float) -> Iterator[bool]:
    """One health run at a time across processes: yields whether this caller holds the lock.

    The lock is a key added to the default cache. When the cache fails, runs are coalesced
    within this process only (and the reuse window still bounds them across processes)."""
    global _lock_warned_at
    cache = caches["default"]
    token = uuid.uuid4().hex
    shared = True
    try:
        acquired = cache.add(_LOCK_KEY, token, timeout=math.ceil(ttl))
    except Exception as exc:  # noqa: BLE001 - any backend error; its text may hold the URL
        shared = False
        if time.monotonic() - _lock_warned_at > 60 or _lock_warned_at == 0.0:
            _lock_warned_at = time.monotonic()
            logger.warning(
                "health run lock: cache unavailable (%s); coalescing per process", type(exc).__name__
            )
        acquired = _local_lock.acquire(blocking=False)
    try:
        yield acquired
    finally:
        if acquired and not shared:
            _local_lock.release()
        elif acquired:
            try:
                # Not atomic: if our lock expired and another run took it in between, that run
                # loses its lock early and at most one extra run may start. Tolerated.
                if cache.get(_LOCK_KEY) == token:
                    cache.delete(_LOCK_KEY)
            except Exception:  # noqa: BLE001, S110 - it expires on its own
                pass


def _reusable(run: HealthRun | None, services: Iterable[str], platform: Iterable[str]) -> bool:
    reuse = float(settings.MCP_HEALTH_REUSE_SECONDS)
    return (
        run is not None
        and reuse > 0
        and run.checked_at >= timezone.now() - td(seconds=reuse)
        # A run of another set of servers (a deploy added one) does not answer for this one.
        and set(run.services) == set(services)
        and set(run.platform) == set(platform)
    )


def _store(snapshot: HealthSnapshot, *, trigger: str, duration_ms: float) -> None:
    from .models import HealthRun, ServiceHealth

    with transaction.atomic():
        run = HealthRun.objects.create(
            checked_at=snapshot.checked_at,
            status=snapshot.status,
            trigger=trigger,
            duration_ms=round(duration_ms, 1),
            services={name: r.to_dict() for name, r in snapshot.services.items()},
            platform={name: r.to_dict() for name, r in snapshot.platform.items()},
        )
        if snapshot.services:
            ServiceHealth.objects.bulk_create(
                [
                    ServiceHealth(
                        service=name,
                        status=str(r.status),
                        detail=r.detail[:2000],
                        latency_ms=r.latency_ms,
                        checked_at=snapshot.checked_at,
                    )
                    for name, r in snapshot.services.items()
                ],
                update_conflicts=True,
                unique_fields=["service"],
                update_fields=["status", "detail", "latency_ms", "checked_at"],
            )
        ServiceHealth.objects.exclude(service__in=list(snapshot.services)).delete()
        HealthRun.objects.filter(pk__lte=run.pk - RUNS_KEPT).delete()


def _run_and_store(
    servers: dict[str, MCPServer],
    platform,
    *,
    trigger: str,
    timeout: float,
    previous: HealthRun | None = None,
) -> HealthSnapshot:
    started = time.perf_counter()
    checks: dict[tuple[str, str], Callable[[], HealthResult]] = {
        ("service", name): partial(_server_check, server, breakers=True) for name, server in servers.items()
    }
    checks.update({("platform", name): check for name, check in platform.items()})
    results = _run_concurrently(checks, timeout)
    snapshot = HealthSnapshot(
        str(worst_status(results.values())),
        timezone.now(),
        {name: r for (kind, name), r in results.items() if kind == "service"},
        {name: r for (kind, name), r in results.items() if kind == "platform"},
        source="live",
    )
    try:
        _store(snapshot, trigger=trigger, duration_ms=(time.perf_counter() - started) * 1000)
    except DatabaseError:
        logger.exception("could not store the health run")
    else:
        # Open pages learn of a changed status at once (stored first, so a refetch finds it).
        live.health_changed(
            {name: r["status"] for name, r in previous.services.items()} if previous else None,
            {name: str(r.status) for name, r in snapshot.services.items()},
            snapshot.status,
            previous.status if previous else None,
        )
    return snapshot


def run_checks_coalesced(*, trigger: str, timeout: float = DEFAULT_TIMEOUT) -> HealthSnapshot:
    """Every check now, unless a run is under way (then the stored run, marked so) or the stored
    run is younger than MCP_HEALTH_REUSE_SECONDS (then that run). Runs are stored."""
    from .registry import get_registry

    servers = dict(get_registry().servers)
    platform = platform_checks(timeout=timeout)
    last = _latest_or_none()
    if _reusable(last, servers, platform):
        return _stored_snapshot(last)
    with _run_lock(timeout + LOCK_MARGIN_SECONDS) as acquired:
        if not acquired:
            return _stored_snapshot(last, run_in_progress=True)
        # A run may have finished between the first read and taking the lock.
        last = _latest_or_none()
        if _reusable(last, servers, platform):
            return _stored_snapshot(last)
        return _run_and_store(servers, platform, trigger=trigger, timeout=timeout, previous=last)


# --- readiness ---------------------------------------------------------------------------------

MIGRATIONS_RECHECK_SECONDS = 10.0
_migrations = {"applied": False, "checked": 0.0, "pending": 0}
_migrations_lock = threading.Lock()


def _pending_migrations() -> int:
    # Loading the migration graph reads every migration file: tens of milliseconds. Once all are
    # applied that stays true for this code, so it is remembered for the process's life; while
    # some are pending the answer is re-read at most every MIGRATIONS_RECHECK_SECONDS, so that a
    # flood of probes costs no more than one.
    from django.db.migrations.executor import MigrationExecutor

    with _migrations_lock:
        if _migrations["applied"]:
            return 0
        if time.monotonic() - _migrations["checked"] < MIGRATIONS_RECHECK_SECONDS:
            return _migrations["pending"]
        executor = MigrationExecutor(connection)
        pending = len(executor.migration_plan(executor.loader.graph.leaf_nodes()))
        _migrations.update(applied=pending == 0, checked=time.monotonic(), pending=pending)
        return pending


def reset_readiness_for_tests() -> None:
    with _migrations_lock:
        _migrations.update(applied=False, checked=0.0, pending=0)


def readiness_problems() -> list[str]:
    """Why this process cannot serve yet (empty when it can): its database does not answer, or
    the database lacks migrations this code needs. No upstream is asked."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        pending = _pending_migrations()
    except DatabaseError as exc:
        return [f"database unreachable ({type(exc).__name__})"]
    if pending:
        return [f"{pending} migration(s) not applied"]
    return []
