"""Live events for the admin: small JSON messages published on Redis pub/sub, so that an event
raised in any web process or Celery worker reaches every open dashboard page within a second
(docs/observability.md, "Live push").

Publishers: a breaker transition (mcp_core.breaker), a change of health status (mcp_core.health),
an error spike (the pipeline counts a service's upstream failures here), a new recommendation
(dashboard.engine). The stream process (mcp_core.live_stream) subscribes once per process and
pushes the events to the browsers as Server-Sent Events.

Each publish is one Lua script, one round trip: it numbers the event (a counter), keeps it in a
short backlog (a list, for a browser that reconnects with Last-Event-ID) and publishes it.
Publishing never fails its caller: without Redis, with Redis down or with LIVE_EVENTS off it
does nothing (the pages then see the change at their next poll).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from . import shared_state

logger = logging.getLogger(__name__)

# Whoever may receive the stream: a staff user with this permission (superusers have it).
LIVE_PERMISSION = "dashboard.view_live_events"
EVENT_TYPES = ("breaker", "health", "error_spike", "recommendation")
BACKLOG = 200  # events kept for reconnecting browsers
MAX_EVENT_BYTES = 2048  # an event is a notice, never a payload: anything larger is not sent
_MAX_TEXT = 300

_PUBLISH = """
local n = 1
if KEYS[4] then
  n = redis.call('INCR', KEYS[4])
  if n == 1 then redis.call('PEXPIRE', KEYS[4], ARGV[3]) end
  if n ~= tonumber(ARGV[4]) then return 0 end
end
local id = redis.call('INCR', KEYS[1])
local message = '{"id":' .. id .. ',' .. string.sub(ARGV[1], 2)
redis.call('LPUSH', KEYS[2], message)
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
redis.call('PUBLISH', KEYS[3], message)
return id
"""

_script: Any = None
_warned_at = 0.0


def channel() -> str:
    """The pub/sub channel. Channels are shared by every database number of a Redis, so the name
    carries the cache's key prefix: deployments and test runs on one Redis never mix."""
    return shared_state.make_key("live:events")


def keys() -> dict[str, str]:
    return {
        "sequence": shared_state.make_key("live:seq"),
        "backlog": shared_state.make_key("live:backlog"),
        "channel": channel(),
    }


def enabled() -> bool:
    return settings.LIVE_EVENTS and shared_state.uses_redis()


def _text(value: Any) -> str:
    return str(value)[:_MAX_TEXT]


def encode(kind: str, data: dict[str, Any]) -> str | None:
    """The event's JSON (without its id, which the script adds), or None when it is too large."""
    body = json.dumps(
        {"type": kind, "at": datetime.now(UTC).isoformat(timespec="milliseconds"), **data},
        separators=(",", ":"),
        default=str,
    )
    if len(body.encode()) > MAX_EVENT_BYTES:
        logger.warning("live event %s not sent: %d bytes (limit %d)", kind, len(body), MAX_EVENT_BYTES)
        return None
    return body


def _run(body: str, spike_key: str | None = None, window_ms: int = 0, threshold: int = 0) -> int:
    global _script, _warned_at
    if not enabled() or shared_state.health.paused():
        return 0
    import redis

    k = keys()
    script_keys = [k["sequence"], k["backlog"], k["channel"], *([spike_key] if spike_key else [])]
    try:
        if _script is None:
            _script = shared_state.redis_client().register_script(_PUBLISH)
        return int(
            _script(
                keys=script_keys,
                args=[body, BACKLOG, window_ms, threshold],
                client=shared_state.redis_client(),
            )
        )
    except (redis.RedisError, OSError) as exc:
        # The same Redis holds the limiter and breaker state: say so once, and pause like they do.
        shared_state.health.failed("live events", exc)
        return 0
    except Exception:
        if time.monotonic() - _warned_at > 60 or _warned_at == 0.0:
            _warned_at = time.monotonic()
            logger.exception("live event not published")
        return 0


def publish(kind: str, **data: Any) -> int:
    """Send one event to every open page; its id, or 0 when it was not sent. Never raises."""
    try:
        body = encode(kind, data)
    except Exception:  # noqa: BLE001 - an event must never break the call that raised it
        logger.exception("live event %s could not be encoded", kind)
        return 0
    return _run(body) if body else 0


def breaker_changed(service: str, from_state: str, to_state: str, reason: str) -> int:
    return publish(
        "breaker", service=_text(service), **{"from": from_state, "to": to_state}, reason=_text(reason)
    )


def health_changed(
    previous: dict[str, str] | None, current: dict[str, str], status: str, prev_status: str | None
) -> int:
    """A health run whose aggregate or any server's status differs from the run before it."""
    changed = {
        name: {"from": (previous or {}).get(name), "to": value}
        for name, value in sorted(current.items())
        if previous is None or previous.get(name) != value
    }
    if not changed and status == prev_status:
        return 0
    # Only names and status words: a check's detail may quote an upstream's error text.
    return publish(
        "health", status=status, previous_status=prev_status, changed=dict(list(changed.items())[:50])
    )


def recommendation_created(rec_id: int, analyzer: str, severity: str, title: str) -> int:
    return publish(
        "recommendation",
        recommendation=rec_id,
        analyzer=_text(analyzer),
        severity=severity,
        title=_text(title),
    )


def service_failed(service: str) -> int:
    """Count one upstream failure of a service; the call that reaches LIVE_ERROR_SPIKE_THRESHOLD
    failures within LIVE_ERROR_SPIKE_WINDOW_SECONDS (counted across every process, in Redis)
    publishes one error_spike event for that window. Never raises."""
    threshold = settings.LIVE_ERROR_SPIKE_THRESHOLD
    if not threshold or not enabled():
        return 0
    window = settings.LIVE_ERROR_SPIKE_WINDOW_SECONDS
    try:
        body = encode(
            "error_spike", {"service": _text(service), "failures": threshold, "window_seconds": window}
        )
    except Exception:  # noqa: BLE001 - an event must never break the call that raised it
        logger.exception("live event error_spike could not be encoded")
        return 0
    if body is None:
        return 0
    return _run(
        body,
        spike_key=shared_state.make_key(f"live:spike:{service}"),
        window_ms=max(1, int(window * 1000)),
        threshold=threshold,
    )


def current_id() -> int:
    """The newest event's id (0 without Redis): a page rendered now has seen everything up to it,
    and its stream starts after it."""
    if not enabled() or shared_state.health.paused():
        return 0
    try:
        return int(shared_state.redis_client().get(keys()["sequence"]) or 0)
    except Exception:  # noqa: BLE001 - the page then simply starts from now
        return 0


def stream_not_here(request: Any) -> Any:
    """The stream's path, reached on the web process: the proxy should have sent it to the stream
    process (or none runs, as under `make run` or in tests). 204 is how Server-Sent Events say
    "no stream here, do not reconnect": the page polls instead, and nothing is logged as an error."""
    from django.http import HttpResponse

    response = HttpResponse(status=204)
    response["Cache-Control"] = "no-store"
    return response


def reset_for_tests() -> None:
    global _script
    _script = None
