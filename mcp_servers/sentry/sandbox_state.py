"""The Sentry sandbox's state: one organisation's project, a handful of issues with their
events, and a Discover-style table of transactions for performance data."""

from __future__ import annotations

import datetime as dt
from typing import Any

# (exception type, value, culprit, level, event count, users)
SAMPLES = [
    ("OperationalError", "could not connect to server: Connection refused", "mcp_core.pipeline in route", "error", 57, 3),
    ("TimeoutError", "calcom did not answer in time (GET /v2/slots)", "mcp_servers.calcom.client in request", "error", 31, 5),
    ("KeyError", "'call_id'", "mcp_servers.webhooks.handlers in handle_retell", "error", 12, 1),
    ("DeprecationWarning", "USE_L10N is deprecated", "django.conf in __getattr__", "warning", 4, 0),
]  # fmt: skip


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def demo_project() -> dict[str, Any]:
    return {"id": "4501", "name": "control-plane", "slug": "control-plane", "platform": "python"}


def demo_issues(
    org: str, project: dict[str, Any], now: dt.datetime
) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The sample issues by id (each naming `project`) and three events of each."""
    issues: dict[str, dict[str, Any]] = {}
    events: dict[str, list[dict[str, Any]]] = {}
    for index, (exc_type, value, culprit, level, count, users) in enumerate(SAMPLES, start=1):
        issue_id = str(1000 + index)
        first = now - dt.timedelta(days=6 - index)
        issues[issue_id] = {
            "id": issue_id,
            "shortId": f"CONTROL-PLANE-{index:X}",
            "title": f"{exc_type}: {value}",
            "culprit": culprit,
            "permalink": f"https://sentry.io/organizations/{org}/issues/{issue_id}/",
            "logger": None,
            "level": level,
            "status": "unresolved",
            "substatus": "ongoing",
            "statusDetails": {},
            "isPublic": False,
            "platform": "python",
            "project": project,
            "type": "error",
            "metadata": {
                "type": exc_type,
                "value": value,
                "filename": culprit.split(" in ")[0].replace(".", "/") + ".py",
                "function": culprit.split(" in ")[-1],
            },
            "numComments": 0,
            "assignedTo": None,
            "issueType": "error",
            "issueCategory": "error",
            "priority": "high" if count > 20 else "medium",
            "count": str(count),
            "userCount": users,
            "firstSeen": iso(first),
            "lastSeen": iso(now - dt.timedelta(hours=index)),
        }
        events[issue_id] = [
            {
                "id": f"{issue_id}{n:028x}"[:32],
                "eventID": f"{issue_id}{n:028x}"[:32],
                "groupID": issue_id,
                "title": f"{exc_type}: {value}",
                "message": value,
                "platform": "python",
                "dateCreated": iso(now - dt.timedelta(hours=index, minutes=n * 7)),
                "dateReceived": iso(now - dt.timedelta(hours=index, minutes=n * 7)),
                "tags": [{"key": "environment", "value": "production"}, {"key": "level", "value": level}],
                "user": None,
                "contexts": {"runtime": {"name": "CPython", "version": "3.11.7"}},
                "entries": [
                    {
                        "type": "exception",
                        "data": {
                            "values": [
                                {
                                    "type": exc_type,
                                    "value": value,
                                    "stacktrace": {
                                        "frames": [
                                            {
                                                "filename": "x.py",
                                                "function": culprit.split(" in ")[-1],
                                                "lineno": 40 + n,
                                            }
                                        ]
                                    },
                                }
                            ]
                        },
                    }
                ],
                "sdk": {"name": "sentry.python.django", "version": "2.75.0"},
            }
            for n in range(3)
        ]
    return issues, events


def demo_transactions() -> list[dict[str, Any]]:
    """Rows of the Discover events table: transaction, p95, p50, count, failure rate."""
    return [
        {
            "transaction": "/api/v1/mcp/call",
            "p95()": 41.5,
            "p50()": 12.0,
            "count()": 12873,
            "failure_rate()": 0.012,
        },
        {"transaction": "/mcp", "p95()": 38.2, "p50()": 10.4, "count()": 9211, "failure_rate()": 0.008},
        {
            "transaction": "/webhooks/retell",
            "p95()": 22.9,
            "p50()": 6.1,
            "count()": 4410,
            "failure_rate()": 0.001,
        },
        {
            "transaction": "/admin/monitoring/",
            "p95()": 180.3,
            "p50()": 95.0,
            "count()": 312,
            "failure_rate()": 0.0,
        },
    ]
