"""The one list of analyzers. settings.IMPROVEMENT_ANALYZERS replaces it when set, so another app
(the Sentry or UI audit servers, say) adds an analyzer by appending its dotted path there."""

from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string

from .base import Analyzer

DEFAULT_ANALYZERS = [
    "dashboard.engine.analyzers.metrics.SlowOperations",
    "dashboard.engine.analyzers.metrics.ErrorRateRise",
    "dashboard.engine.analyzers.metrics.BreakerFlapping",
    "dashboard.engine.analyzers.metrics.BreakerStuckHalfOpen",
    "dashboard.engine.analyzers.metrics.RateLimitSaturation",
    "dashboard.engine.analyzers.metrics.NotConfiguredCalls",
    "dashboard.engine.analyzers.metrics.CallerErrorRate",
    "dashboard.engine.analyzers.operations.QueueBacklog",
    "dashboard.engine.analyzers.operations.WebhookFailures",
    "dashboard.engine.analyzers.database.SlowQueries",
    "dashboard.engine.analyzers.database.MissingIndexes",
    "dashboard.engine.analyzers.database.UnusedIndexes",
    "dashboard.engine.analyzers.database.CacheHitRate",
    "dashboard.engine.analyzers.business.UnbookedCalls",
    "dashboard.engine.analyzers.quality.UIAccessibility",
]


def analyzer_paths() -> list[str]:
    return list(getattr(settings, "IMPROVEMENT_ANALYZERS", DEFAULT_ANALYZERS))


def get_analyzers() -> list[Analyzer]:
    analyzers = []
    seen: set[str] = set()
    for path in analyzer_paths():
        try:
            cls = import_string(path)
        except ImportError as exc:
            raise ImportError(f"IMPROVEMENT_ANALYZERS: {path!r} cannot be imported: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, Analyzer)) or not cls.name:
            raise TypeError(f"IMPROVEMENT_ANALYZERS: {path!r} is not a named Analyzer subclass")
        if cls.name in seen:
            raise TypeError(f"IMPROVEMENT_ANALYZERS: analyzer name {cls.name!r} is registered twice")
        seen.add(cls.name)
        analyzers.append(cls())
    return analyzers
