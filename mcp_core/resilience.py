"""The resilience part of the health report: where limiter and breaker state lives, whether
it works, every breaker's state, and the connection pools."""

from __future__ import annotations

from typing import Any

from .breaker import breaker_states
from .pools import pool_report
from .recorder import get_recorder
from .shared_state import resilience_status

_SEVERITY = {"healthy": 0, "not_configured": 0, "degraded": 1, "unhealthy": 2}


def resilience_report() -> dict[str, Any]:
    status = resilience_status(probe=True)
    if status["status"] == "healthy":
        breakers = {row["service"]: row["state"] for row in breaker_states()}
    else:
        breakers = {}  # Redis is down: there is no shared state to read
    return {**status, "breakers": breakers}


def with_resilience(report: dict[str, Any]) -> dict[str, Any]:
    """Add "resilience", "pools" and this process's "audit_queue" to a health report; a failing
    Redis or failing audit batches make it at least degraded."""
    resilience = resilience_report()
    audit_queue = get_recorder().status()
    report["resilience"] = resilience
    report["pools"] = pool_report()
    report["audit_queue"] = audit_queue
    for part in (resilience, audit_queue):
        if _SEVERITY.get(part["status"], 0) > _SEVERITY.get(report.get("status", "healthy"), 0):
            report["status"] = part["status"]
    return report
