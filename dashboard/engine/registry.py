"""The analyzers named in settings.IMPROVEMENT_ANALYZERS (declared in askpro/settings.py), so another
app (the Sentry or UI audit servers, say) adds an analyzer by appending its dotted path there."""

from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string

from .base import Analyzer


def analyzer_paths() -> list[str]:
    return list(settings.IMPROVEMENT_ANALYZERS)


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
