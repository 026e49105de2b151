"""Periodic tasks of the dashboard: thin wrappers around services (style anchor C9)."""

from celery import shared_task

from .models import ImprovementRun


@shared_task(name="dashboard.improvements_run")
def improvements_run_task() -> int:
    from .engine import improvements_run

    return improvements_run(trigger=ImprovementRun.Trigger.SCHEDULE).pk


@shared_task(name="dashboard.metrics_compact_hourly")
def metrics_compact_hourly_task() -> dict:
    from .rollups import compact_hourly

    return compact_hourly()


@shared_task(name="dashboard.health_checks_run")
def health_checks_run_task() -> dict:
    from mcp_core.models import HealthRun

    from .services import health_checks_run

    snapshot = health_checks_run(trigger=HealthRun.Trigger.SCHEDULE)
    return {name: str(r.status) for name, r in snapshot.services.items()}
