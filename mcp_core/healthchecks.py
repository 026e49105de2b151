"""django-health-check (v4) checks for `/health/`: the database, the cache, the Celery broker
(when one is configured) and one check per registered MCP server."""

from __future__ import annotations

import dataclasses
import datetime

from django.conf import settings
from health_check.base import HealthCheck
from health_check.checks import Cache, Database
from health_check.exceptions import ServiceUnavailable, ServiceWarning
from health_check.views import HealthCheckView

from .health import HealthStatus, check_servers
from .registry import get_registry


@dataclasses.dataclass
class CeleryBroker(HealthCheck):
    """The broker accepts a connection (no worker is needed, unlike health_check's Ping)."""

    timeout = datetime.timedelta(seconds=3)

    def run(self) -> None:
        from askpro.celery import app

        try:
            with app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=self.timeout.total_seconds())
        except Exception as exc:
            # The exception text may carry the broker URL with its password: name the type only.
            raise ServiceUnavailable(f"broker unreachable ({type(exc).__name__})") from None


@dataclasses.dataclass
class MCPServerHealth(HealthCheck):
    """One MCP server's own health check. not_configured is a fact, not a failure."""

    service: str
    timeout = datetime.timedelta(seconds=5)

    def run(self) -> None:
        server = get_registry().get_server(self.service)
        if server is None:
            raise ServiceUnavailable(f"no MCP server {self.service!r}")
        result = check_servers([server], timeout=self.timeout.total_seconds())[self.service]
        if result.status == HealthStatus.UNHEALTHY:
            raise ServiceUnavailable(result.detail or "unhealthy")
        if result.status == HealthStatus.DEGRADED:
            raise ServiceWarning(result.detail or "degraded")


def control_plane_checks() -> list[HealthCheck]:
    checks: list[HealthCheck] = [Database(), Cache()]
    if settings.CELERY_BROKER_URL and not settings.CELERY_TASK_ALWAYS_EAGER:
        checks.append(CeleryBroker())
    checks.extend(MCPServerHealth(service=name) for name in sorted(get_registry().servers))
    return checks


class ControlPlaneHealthView(HealthCheckView):
    """django-health-check's view with the checks derived per request from the registry."""

    def get_checks(self):
        yield from control_plane_checks()
