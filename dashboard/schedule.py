"""The project's periodic tasks, defined in code; `manage.py setup_periodic_tasks` writes them to
django-celery-beat atomically (style anchor C9). Tasks are named by their Celery name, so another
app's task (e.g. the webhooks sweep) is scheduled by adding a line here, without an import."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Periodic:
    name: str
    task: str
    minute: str = "*"
    hour: str = "*"
    description: str = ""


SCHEDULE = [
    Periodic(
        "improvements: hourly analysis",
        "dashboard.improvements_run",
        minute="7",
        description="Runs every ImprovementEngine analyzer and refreshes the recommendations.",
    ),
    Periodic(
        "metrics: compact hourly rollups",
        "dashboard.metrics_compact_hourly",
        minute="*/5",
        description="Compacts complete hours of per-minute rollups for the 24 h and 7 d views.",
    ),
    Periodic(
        "health: check every server",
        "dashboard.health_checks_run",
        minute="*/5",
        description="Stores every server's health check for the MCP dashboard.",
    ),
    Periodic(
        "webhooks: sweep stuck and due events",
        "webhooks.sweep",
        minute="*",
        description="Re-queues received events whose task may have been lost and events whose worker lease expired.",
    ),
    Periodic(
        "messaging: send messages deferred by quiet hours",
        "messaging.send_deferred",
        minute="*",
        description="Sends the SMS and WhatsApp messages whose tenant's quiet hours have ended.",
    ),
    Periodic(
        "gcal: renew push channels",
        "gcal.renew_channels",
        minute="17",
        description="Reopens Google Calendar push channels that expire within a day.",
    ),
    Periodic(
        "reminders: hand out due appointment reminders",
        "notifications.sweep",
        minute="*",
        description="Queues the appointment reminders now due (and those a dead worker left) to the workers, each once.",
    ),
    Periodic(
        "oauth: clear expired tokens",
        "oauth.clear_expired",
        minute="23",
        description="Deletes expired authorization codes, access tokens and old refresh tokens of MCP clients.",
    ),
]
