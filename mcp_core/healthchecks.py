"""The health endpoints (docs/health.md).

- `/health/`: anonymous callers get the newest stored run's aggregate and its time, nothing
  else, and start no check. Staff (a signed-in session) and API key holders get every result
  through django-health-check's renderers (HTML, JSON, text, OpenMetrics, feeds), from a live
  run that is coalesced across callers and processes (mcp_core.health.run_checks_coalesced).
- `/health/live`: the process answers. Touches nothing else; for load balancers.
- `/health/ready`: the database answers and has every migration this code needs.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.utils.http import http_date
from django.views.decorators.http import require_safe
from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable, ServiceWarning
from health_check.views import HealthCheckView

from .api_keys import api_key_authenticate_cached, bearer_token
from .health import (
    UNKNOWN,
    HealthResult,
    HealthSnapshot,
    HealthStatus,
    health_summary,
    readiness_problems,
    run_checks_coalesced,
)
from .models import HealthRun

# Platform results keep the names django-health-check's own checks had here, so monitors that
# parse the JSON keys see the same ones.
_PLATFORM_LABELS = {
    "database": "Database(alias='default')",
    "cache": "Cache(alias='default')",
    "broker": "CeleryBroker()",
}
_PASSING = {str(HealthStatus.HEALTHY), str(HealthStatus.NOT_CONFIGURED)}


@dataclasses.dataclass
class StoredResult(HealthCheck):
    """One result of a health run, shown through django-health-check's renderers. It does no
    work of its own: the run already happened (or was reused)."""

    label: str
    result: HealthResult = dataclasses.field(repr=False)

    def __repr__(self) -> str:
        return self.label

    @property
    def labels(self) -> dict[str, str]:
        return {"check": self.label}

    async def run(self) -> None:
        if self.result.status == HealthStatus.UNHEALTHY:
            raise ServiceUnavailable(self.result.detail or "unhealthy")
        if self.result.status == HealthStatus.DEGRADED:
            raise ServiceWarning(self.result.detail or "degraded")


def snapshot_checks(snapshot: HealthSnapshot) -> list[StoredResult]:
    checks = [
        StoredResult(label=_PLATFORM_LABELS.get(name, f"{name}()"), result=result)
        for name, result in sorted(snapshot.platform.items())
    ]
    checks += [
        StoredResult(label=f"MCPServerHealth(service={name!r})", result=result)
        for name, result in sorted(snapshot.services.items())
    ]
    if snapshot.status == UNKNOWN:
        detail = "not checked yet" + ("; a check is running" if snapshot.run_in_progress else "")
        checks.append(StoredResult(label="HealthRun()", result=HealthResult(HealthStatus.UNHEALTHY, detail)))
    return checks


ANONYMOUS, STAFF, KEY, REFUSED = "anonymous", "staff", "key", "refused"


def health_access(request: HttpRequest) -> str:
    """Who is asking: a Bearer key (valid or refused), a signed-in staff member, or anyone."""
    token = bearer_token(request.headers.get("Authorization"))
    if token is not None:
        return KEY if api_key_authenticate_cached(token) is not None else REFUSED
    user = getattr(request, "user", None)
    if user is not None and user.is_active and user.is_staff:
        return STAFF
    return ANONYMOUS


def _private(response: HttpResponse) -> HttpResponse:
    # The answer depends on who asks: no shared cache may hand a staff answer to anyone else.
    add_never_cache_headers(response)
    patch_vary_headers(response, ["Authorization", "Cookie"])
    return response


def summary_response(summary: dict) -> HttpResponse:
    response = JsonResponse(summary, status=200 if summary["status"] in _PASSING else 503)
    if summary["checked_at"]:
        response["Last-Modified"] = http_date(datetime.fromisoformat(summary["checked_at"]).timestamp())
    return _private(response)


def _anonymous_summary() -> dict:
    try:
        return health_summary()
    except Exception:  # noqa: BLE001 - the store is unreachable: that is the answer
        return {"status": str(HealthStatus.UNHEALTHY), "checked_at": None, "age_seconds": None}


class ControlPlaneHealthView(HealthCheckView):
    """`/health/`: the stored aggregate for anyone; every result, from a coalesced live run, for
    staff and API key holders. 200 when healthy, 503 otherwise."""

    snapshot: HealthSnapshot

    async def get(self, request, *args, **kwargs):
        access = await sync_to_async(health_access)(request)
        if access == REFUSED:
            response = JsonResponse(
                {"error": {"code": "unauthorized", "message": "Authorization: the API key is not valid"}},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="askpro"'},
            )
            return _private(response)
        if access == ANONYMOUS:
            return summary_response(await sync_to_async(_anonymous_summary)())
        self.snapshot = await sync_to_async(run_checks_coalesced)(trigger=HealthRun.Trigger.HEALTH_PAGE)
        response = await super().get(request, *args, **kwargs)
        if response.status_code == 500:
            response.status_code = 503  # unavailable, not a server bug
        if self.snapshot.checked_at is not None:
            response["Last-Modified"] = http_date(self.snapshot.checked_at.timestamp())
        response["X-Health-Source"] = self.snapshot.source
        return _private(response)

    def get_checks(self):
        yield from snapshot_checks(self.snapshot)


@require_safe
def live_view(request: HttpRequest) -> HttpResponse:
    """The process is up and serving requests. Reads no database, cache or upstream."""
    return _private(JsonResponse({"status": "alive"}))


@require_safe
def ready_view(request: HttpRequest) -> HttpResponse:
    """This process can serve: its database answers and holds every migration the code needs."""
    problems = readiness_problems()
    if problems:
        return _private(JsonResponse({"status": "not_ready", "problems": problems}, status=503))
    return _private(JsonResponse({"status": "ready"}))
