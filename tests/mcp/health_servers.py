"""Servers whose health checks behave in known ways, for the health command and endpoint tests."""

from __future__ import annotations

import time

from mcp_core.health import HealthResult, HealthStatus
from mcp_core.server import MCPServer


class Fine(MCPServer):
    name = "fine"
    description = "Always healthy."

    def health(self) -> HealthResult:
        return HealthResult(HealthStatus.HEALTHY, "ok")


class Slowish(MCPServer):
    name = "slowish"
    description = "Works, but slowly."

    def health(self) -> HealthResult:
        return HealthResult(HealthStatus.DEGRADED, "p99 above 2s")


class Broken(MCPServer):
    name = "broken"
    description = "Its upstream refuses connections."

    def health(self) -> HealthResult:
        raise ConnectionRefusedError("upstream down")


class Hung(MCPServer):
    name = "hung"
    description = "Its upstream never answers."

    def health(self) -> HealthResult:
        time.sleep(120)
        return HealthResult(HealthStatus.HEALTHY)


class Unconfigured(MCPServer):
    name = "unconfigured"
    description = "No credentials."

    def is_configured(self) -> bool:
        return False

    def health(self) -> HealthResult:
        raise AssertionError("never called without credentials")


def paths(*names: str) -> list[str]:
    return [f"tests.mcp.health_servers.{name}" for name in names]
