"""The three observability settings bench_observability compares, applied to a process after
django.setup(): metrics off (no Prometheus middleware, route() counts nothing for /metrics),
metrics on (as shipped) and tracing on (as shipped, plus OpenTelemetry with every
instrumentation, exporting through the batch processor to an exporter that drops the spans, so
the figure is the cost of building spans, not of a collector)."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

MODES = ("metrics_off", "metrics_on", "tracing")
PROMETHEUS_MIDDLEWARE = "mcp_core.prometheus.PrometheusMiddleware"


class DroppingExporter(SpanExporter):
    """Accepts every batch and keeps nothing."""

    def export(self, spans: Sequence) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def apply(mode: str, *, set_global: bool = True) -> None:
    """Switch this process to `mode` (after `reset()` when switching back and forth)."""
    from django.conf import settings

    import mcp_core.pipeline
    from mcp_core import tracing

    if mode not in MODES:
        raise SystemExit(f"BENCH_OBSERVABILITY: expected one of {', '.join(MODES)}, got {mode!r}")
    if mode == "metrics_off":
        settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != PROMETHEUS_MIDDLEWARE]
        mcp_core.pipeline.observe_call = lambda **kwargs: None
    elif mode == "tracing":
        tracing.configure([DroppingExporter()], set_global=set_global)


def reset() -> None:
    """Back to metrics on, tracing off."""
    from django.conf import settings

    import mcp_core.pipeline
    import mcp_core.prometheus
    from mcp_core import tracing

    tracing.shutdown()
    if PROMETHEUS_MIDDLEWARE not in settings.MIDDLEWARE:
        settings.MIDDLEWARE = [PROMETHEUS_MIDDLEWARE, *settings.MIDDLEWARE]
    mcp_core.pipeline.observe_call = mcp_core.prometheus.observe_call
