"""OpenTelemetry traces: off unless OTEL_TRACES_EXPORTER names an exporter (docs/observability.md).

When on, every process (web, Celery worker and beat, management commands) gets one SDK tracer
provider and the official instrumentations of Django (a SERVER span per HTTP request, joining a
client's `traceparent`), Celery (a PRODUCER span per published task and a CONSUMER span per run,
the context carried in the message headers), psycopg (a CLIENT span per SQL statement) and
requests (a CLIENT span per upstream call, so every `mcp_core.http.UpstreamClient` request), and
`route()` adds one span per orchestrated call between them.

When off, nothing here runs: the SDK is not even imported, no provider is installed, no
instrumentation patches anything and `route()` takes its untraced path (`tracer` stays None).

A database query or an upstream request made outside any traced request, task or call (the
audit flusher thread, health checks in their pool threads) starts no trace of its own: a CLIENT
span without a parent is dropped by the sampler, so that background chatter does not flood the
tracing backend with one-span traces.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer

logger = logging.getLogger(__name__)

# The tracer of route()'s spans; None while tracing is off (route() checks it first).
tracer: Tracer | None = None
_provider: TracerProvider | None = None
_instrumented: list[Any] = []

TRACER_NAME = "askpro.pipeline"


def _instrumentors() -> list[Any]:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    return [DjangoInstrumentor(), CeleryInstrumentor(), PsycopgInstrumentor(), RequestsInstrumentor()]


def _sampler() -> Any:
    """The sampler OTEL_TRACES_SAMPLER names (settings validated it), wrapped so that a CLIENT
    span without a parent is dropped."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace.sampling import (
        ALWAYS_OFF,
        ALWAYS_ON,
        Decision,
        ParentBased,
        Sampler,
        SamplingResult,
        TraceIdRatioBased,
    )

    ratio = settings.OTEL_TRACES_SAMPLER_ARG
    configured: Sampler = {
        "always_on": lambda: ALWAYS_ON,
        "always_off": lambda: ALWAYS_OFF,
        "traceidratio": lambda: TraceIdRatioBased(ratio),
        "parentbased_always_on": lambda: ParentBased(ALWAYS_ON),
        "parentbased_always_off": lambda: ParentBased(ALWAYS_OFF),
        "parentbased_traceidratio": lambda: ParentBased(TraceIdRatioBased(ratio)),
    }[settings.OTEL_TRACES_SAMPLER]()

    class NoOrphanClientSpans(Sampler):
        """Drops a CLIENT span (SQL statement, upstream request) that has no parent span."""

        def should_sample(
            self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None
        ):  # noqa: E501
            parent = trace.get_current_span(parent_context).get_span_context()
            if kind == trace.SpanKind.CLIENT and not parent.is_valid:
                return SamplingResult(Decision.DROP)
            return configured.should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )

        def get_description(self) -> str:
            return f"NoOrphanClientSpans{{{configured.get_description()}}}"

    return NoOrphanClientSpans()


def _resource() -> Any:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    # Resource.create() reads OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME itself; the
    # project's name is only the fallback for "unknown_service".
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: settings.OTEL_SERVICE_NAME}))
    return resource


def settings_exporters() -> list[SpanExporter]:
    """The exporters OTEL_TRACES_EXPORTER names. The OTLP exporter (HTTP/protobuf) reads its
    standard OTEL_EXPORTER_OTLP_* variables (endpoint, headers, timeout, certificate) itself."""
    exporters: list[SpanExporter] = []
    for name in settings.OTEL_TRACES_EXPORTER:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter())
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            # stderr, like the logs: stdout belongs to mcp_stdio's protocol.
            exporters.append(ConsoleSpanExporter(out=sys.stderr))
    return exporters


def configure(
    exporters: Sequence[SpanExporter], *, batch: bool = True, set_global: bool = True
) -> TracerProvider:
    """Install a tracer provider exporting to `exporters` and instrument Django, Celery,
    psycopg and requests with it. `batch` False exports each span as it ends (tests);
    `set_global` False leaves OpenTelemetry's process-wide provider alone (it can be set only
    once per process, and tests switch tracing on and off)."""
    global tracer, _provider
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    shutdown()
    provider = TracerProvider(sampler=_sampler(), resource=_resource())
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
    if set_global:
        trace.set_tracer_provider(provider)
    for instrumentor in _instrumentors():
        options: dict[str, Any] = {"tracer_provider": provider}
        if type(instrumentor).__name__ == "DjangoInstrumentor":
            options["excluded_urls"] = settings.OTEL_PYTHON_DJANGO_EXCLUDED_URLS
        instrumentor.instrument(**options)
        _instrumented.append(instrumentor)
    _provider = provider
    tracer = provider.get_tracer(TRACER_NAME)
    return provider


def shutdown() -> None:
    """Undo configure(): remove the instrumentations and flush and stop the provider."""
    global tracer, _provider
    while _instrumented:
        _instrumented.pop().uninstrument()
    if _provider is not None:
        _provider.shutdown()
    tracer, _provider = None, None


def provider() -> TracerProvider | None:
    """The provider configure() installed, or None while tracing is off."""
    return _provider


def configure_from_settings() -> None:
    """At start-up (mcp_core's AppConfig.ready): tracing on when the settings say so."""
    if settings.OTEL_TRACING and _provider is None:
        configure(settings_exporters())
        logger.debug("OpenTelemetry tracing on, exporting to %s", ", ".join(settings.OTEL_TRACES_EXPORTER))
