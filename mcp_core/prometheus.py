"""Prometheus metrics: counters and histograms updated as calls happen, gauges read at scrape time.

Two kinds of figures (docs/observability.md lists every metric):

- per process, updated where they happen: HTTP requests, orchestrated calls by service,
  operation, transport and outcome class, their latency, rate-limiter refusals, breaker
  transitions, this process's audit queue and connection pools. With PROMETHEUS_MULTIPROC_DIR
  set (gunicorn workers, Celery processes), prometheus_client keeps them in per-process files
  in that directory and `/metrics` sums them over every process that wrote there;
- shared, read once per scrape from where they live: breaker states (Redis), and the gauges a
  server contributes through `MCPServer.gauges()` (the webhook backlog, the queue depth). The
  core never imports a server: it asks the registry.

Label values are bounded: a service or operation the registry does not know is counted as
"_unknown", so that made-up names in requests cannot create series.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .contracts import ErrorCode, outcome_class

logger = logging.getLogger(__name__)

# The *_created series double the output for a figure Prometheus derives itself (a reset shows
# as a drop); multiprocess mode never has them, so single-process mode matches it.
disable_created_metrics()

UNKNOWN = "_unknown"
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
# Seconds: from a cache hit (~1 ms) to a slow upstream (the default operation timeout is 30 s).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

HTTP_REQUESTS = Counter(
    "askpro_http_requests",
    "HTTP requests answered, by method, URL route (the pattern, not the path) and status code.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "askpro_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and URL route.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
CALLS = Counter(
    "askpro_mcp_calls",
    "Orchestrated calls (one per audit row), by service, operation, transport and outcome class "
    "(success, caller_error, not_configured, service_failure).",
    ["service", "operation", "transport", "outcome"],
)
CALL_ERRORS = Counter(
    "askpro_mcp_call_errors",
    "Failed orchestrated calls by service and error code.",
    ["service", "code"],
)
CALL_DURATION = Histogram(
    "askpro_mcp_call_duration_seconds",
    "Time spent in the pipeline per call, by service and operation.",
    ["service", "operation"],
    buckets=LATENCY_BUCKETS,
)
RATE_LIMIT_REFUSALS = Counter(
    "askpro_rate_limit_refusals",
    "Calls refused by the rate limiter, by service and limit (rate or concurrency).",
    ["service", "limit"],
)
BREAKER_TRANSITIONS = Counter(
    "askpro_breaker_transitions",
    "Circuit breaker state changes made by this deployment's processes, by service and transition.",
    ["service", "transition"],
)
# Per-process gauges: summed over the live processes (a dead worker's file is dropped by the
# gunicorn child_exit hook, docs/observability.md).
AUDIT_PENDING = Gauge(
    "askpro_audit_queue_pending",
    "Audit rows queued in memory for the batch writer, summed over live processes.",
    multiprocess_mode="livesum",
)
DB_POOL = Gauge(
    "askpro_db_pool_connections",
    "psycopg pool connections by database alias and state (in_use, idle, waiting requests, max), "
    "summed over live processes.",
    ["alias", "state"],
    multiprocess_mode="livesum",
)
HTTP_POOL = Gauge(
    "askpro_http_pool_connections",
    "Upstream HTTP connection pool slots by service and state (in_use, idle, max), summed over live processes.",
    ["service", "state"],
    multiprocess_mode="livesum",
)
REDIS_POOL = Gauge(
    "askpro_redis_pool_connections",
    "Redis connections by cache alias and state (in_use, idle), summed over live processes.",
    ["alias", "state"],
    multiprocess_mode="livesum",
)

_BREAKER_STATES = ("closed", "open", "half_open")
# Pool gauges are refreshed at most this often per process (and on every scrape).
POOL_REFRESH_SECONDS = 5.0
_last_pool_refresh = 0.0


@lru_cache(maxsize=4096)
def _call_children(service: str, operation: str, transport: str, outcome: str) -> tuple[Any, Any]:
    # Label lookups hash and lock; the children are cached so a call pays two increments.
    return CALLS.labels(service, operation, transport, outcome), CALL_DURATION.labels(service, operation)


def observe_call(
    *, service: str | None, operation: str | None, transport: str, error_code: Any, duration_s: float
) -> None:
    """Count one orchestrated call (route() calls this once per audit row).

    service/operation are None when the registry does not know them."""
    outcome = outcome_class(error_code)
    counter, histogram = _call_children(
        service or UNKNOWN, operation or UNKNOWN, transport or UNKNOWN, outcome.value
    )
    counter.inc()
    histogram.observe(duration_s)
    if error_code:
        code = error_code.value if isinstance(error_code, ErrorCode) else str(error_code)
        CALL_ERRORS.labels(service or UNKNOWN, code).inc()
    maybe_refresh_pools()


def observe_rate_limit_refusal(service: str, limit: str) -> None:
    RATE_LIMIT_REFUSALS.labels(service, limit).inc()


def observe_breaker_transition(service: str, transition: str) -> None:
    BREAKER_TRANSITIONS.labels(service, transition.replace(">", "_to_")).inc()


def set_audit_pending(count: int) -> None:
    AUDIT_PENDING.set(count)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observe_http(method: str, route: str, status: int, duration_s: float) -> None:
    method = method if method in _METHODS else "other"  # a client picks the method: bound it
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_DURATION.labels(method, route).observe(duration_s)


# --- pools: per process, refreshed now and then ---
def maybe_refresh_pools() -> None:
    global _last_pool_refresh
    now = time.monotonic()
    if now - _last_pool_refresh < POOL_REFRESH_SECONDS:
        return
    _last_pool_refresh = now
    refresh_pools()


def refresh_pools() -> None:
    """Copy this process's pool figures into the gauges. Never raises."""
    from .pools import database_pools, http_pool_report, redis_pools

    try:
        for alias, entry in database_pools().items():
            if entry.get("size") is None:
                continue
            DB_POOL.labels(alias, "in_use").set(entry["in_use"])
            DB_POOL.labels(alias, "idle").set(entry["idle"])
            DB_POOL.labels(alias, "waiting").set(entry["waiting"])
            DB_POOL.labels(alias, "max").set(entry["max_size"])
        for row in http_pool_report():
            pools = row["pools"]
            HTTP_POOL.labels(row["service"], "in_use").set(sum(p["in_use"] for p in pools))
            HTTP_POOL.labels(row["service"], "idle").set(sum(p["idle"] for p in pools))
            HTTP_POOL.labels(row["service"], "max").set(sum(p["max_size"] for p in pools))
        for alias, entry in redis_pools().items():
            if "error" in entry:
                continue
            REDIS_POOL.labels(alias, "in_use").set(entry["in_use"])
            REDIS_POOL.labels(alias, "idle").set(entry["available"])
    except Exception:
        logger.exception("could not read the connection pools for /metrics")


# --- shared state, read once per scrape ---
class SharedStateCollector(Collector):
    """Breaker states and the servers' own gauges, read from Redis/PostgreSQL at scrape time.

    Each source that fails is reported by askpro_scrape_source_up 0, never by a failed scrape."""

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily(
            "askpro_scrape_source_up", "1 when the source could be read for this scrape.", labels=["source"]
        )
        breaker = GaugeMetricFamily(
            "askpro_breaker_state",
            "Circuit breaker state per service: 1 for the current state, 0 for the others.",
            labels=["service", "state"],
        )
        try:
            from .breaker import breaker_states

            for row in breaker_states():
                for state in _BREAKER_STATES:
                    breaker.add_metric([row["service"], state], 1.0 if row["state"] == state else 0.0)
            up.add_metric(["breakers"], 1.0)
        except Exception:
            logger.exception("could not read breaker states for /metrics")
            up.add_metric(["breakers"], 0.0)
        yield breaker
        from .registry import get_registry

        for name, server in sorted(get_registry().servers.items()):
            try:
                families = list(_families(server.gauges()))
            except Exception:
                logger.exception("could not read the %s server's gauges for /metrics", name)
                up.add_metric([f"server:{name}"], 0.0)
                continue
            if families:
                up.add_metric([f"server:{name}"], 1.0)
            yield from families
        yield up


def _families(gauges: Iterable[Any]) -> Iterator[GaugeMetricFamily]:
    by_name: dict[str, GaugeMetricFamily] = {}
    for gauge in gauges:
        family = by_name.get(gauge.name)
        if family is None:
            family = by_name[gauge.name] = GaugeMetricFamily(
                f"askpro_{gauge.name}", gauge.help, labels=list(gauge.labels)
            )
        family.add_metric([str(v) for v in gauge.labels.values()], float(gauge.value))
    yield from by_name.values()


class _ProcessMetrics(Collector):
    """The counters and histograms of this process (single process) or of every process that
    wrote to PROMETHEUS_MULTIPROC_DIR."""

    def collect(self) -> Iterator[Any]:
        if MULTIPROCESS:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            yield from registry.collect()
        else:
            yield from REGISTRY.collect()


def scrape_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ProcessMetrics())
    registry.register(SharedStateCollector())
    return registry


def mark_process_dead(pid: int) -> None:
    """Drop a dead process's live gauges (gunicorn child_exit, Celery worker_process_shutdown)."""
    if MULTIPROCESS:
        multiprocess.mark_process_dead(pid)


# --- the endpoint ---
def allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(item, strict=False) for item in settings.METRICS_ALLOWED_IPS]


def _authorized(request: HttpRequest) -> bool | None:
    """True: let it scrape; False: refuse; None: the endpoint is off (nothing configured)."""
    token = settings.METRICS_TOKEN
    networks = allowed_networks()
    if not token and not networks:
        return None
    if token:
        given = request.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode()):
            return True
    if networks:
        try:
            peer = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
        except ValueError:
            return False
        return any(peer in network for network in networks)
    return False


def metrics_view(request: HttpRequest) -> HttpResponse:
    """GET /metrics: the Prometheus text exposition format, for an allowed scraper only.

    Off (404) unless METRICS_TOKEN or METRICS_ALLOWED_IPS is set; either one admits a scraper."""
    verdict = _authorized(request)
    if verdict is None:
        raise Http404("metrics are off")
    if not verdict:
        response = HttpResponse("Forbidden: a metrics token or an allowed address is required\n", status=403)
        response["Content-Type"] = "text/plain; charset=utf-8"
        if settings.METRICS_TOKEN:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD"})
    refresh_pools()
    return HttpResponse(generate_latest(scrape_registry()), content_type=CONTENT_TYPE_LATEST)


class PrometheusMiddleware:
    """Counts every HTTP request by its URL pattern (outermost, so refusals count too)."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = (match.route or match.view_name) if match is not None else "_unmatched"
        try:
            observe_http(
                request.method or "",
                "/" + route.lstrip("/"),
                response.status_code,
                time.perf_counter() - started,
            )
            maybe_refresh_pools()
        except Exception:
            logger.exception("could not count an HTTP request for /metrics")
        return response
