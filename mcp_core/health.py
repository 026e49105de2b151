"""The health vocabulary and concurrent health checks of the registered servers."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from django.db import close_old_connections
from django.utils import timezone

if TYPE_CHECKING:
    from .server import MCPServer


class HealthStatus(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    NOT_CONFIGURED = "not_configured"


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
            "detail": self.detail,
        }


def aggregate_status(results: dict[str, HealthResult]) -> HealthStatus:
    """The worst status among configured services; not_configured is a fact, not a fault."""
    worst = HealthStatus.HEALTHY
    for result in results.values():
        if _SEVERITY[result.status] > _SEVERITY[worst]:
            worst = result.status
    return worst


def _run_one(server: MCPServer) -> HealthResult:
    started = time.perf_counter()
    try:
        if not server.is_configured():
            result = HealthResult(HealthStatus.NOT_CONFIGURED, "no credentials configured")
        else:
            result = server.health()
    except Exception as exc:  # a health check must never take the report down
        result = HealthResult(HealthStatus.UNHEALTHY, f"check failed: {type(exc).__name__}")
    finally:
        close_old_connections()
    if result.latency_ms is None:
        result.latency_ms = (time.perf_counter() - started) * 1000
    return result


def check_servers(servers: list[MCPServer], *, timeout: float = 5.0) -> dict[str, HealthResult]:
    """Run every server's check concurrently, each bounded by `timeout` seconds.

    A check still running at the timeout is reported unhealthy and abandoned; its thread
    is a daemon of the pool and cannot hold the caller.
    """
    if not servers:
        return {}
    pool = ThreadPoolExecutor(max_workers=min(16, len(servers)), thread_name_prefix="health")
    futures = {server.name: pool.submit(_run_one, server) for server in servers}
    wait(futures.values(), timeout=timeout)
    results: dict[str, HealthResult] = {}
    for name, future in futures.items():
        if future.done():
            results[name] = future.result()
        else:
            future.cancel()
            results[name] = HealthResult(
                HealthStatus.UNHEALTHY,
                f"check timed out after {timeout:g}s",
                latency_ms=timeout * 1000,
            )
    pool.shutdown(wait=False, cancel_futures=True)
    return results


def health_report(servers: list[MCPServer], *, timeout: float = 5.0) -> dict[str, Any]:
    results = check_servers(servers, timeout=timeout)
    return {
        "status": str(aggregate_status(results)),
        "checked_at": timezone.now().isoformat(),
        "services": {name: result.to_dict() for name, result in sorted(results.items())},
    }
