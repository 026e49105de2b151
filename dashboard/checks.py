"""System check: every registered analyzer imports and is a named Analyzer (fails at start-up)."""

from django.core import checks


@checks.register("dashboard")
def check_analyzers(app_configs, **kwargs):
    from .engine.registry import get_analyzers

    try:
        get_analyzers()
    except (ImportError, TypeError) as exc:
        return [checks.Error(str(exc), id="dashboard.E001")]
    return []
