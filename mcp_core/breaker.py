"""One circuit breaker per service, shared by every web and Celery process (resilience4j semantics).

closed: calls pass; their outcomes fill a time window (MCP_BREAKERS[...]["window"] seconds,
  in ten buckets). Once the window holds at least `minimum_calls` calls and the failure rate
  reaches `failure_rate_threshold` % or the slow-call rate (calls taking at least
  `slow_call_duration` s) reaches `slow_call_rate_threshold` %, the breaker opens.
open: calls fail fast with circuit_open and retry_after; the upstream sees nothing. After
  `open_duration` s the next call moves it to half-open.
half_open: `half_open_calls` trial calls pass, the rest fail fast. When all trials have
  finished, the same two thresholds over the trials decide: open again or closed. If every
  trial permit is out but some never report (a killed worker) for `half_open_max_wait` s, it
  opens again (with little traffic it simply waits for the trials to come).

Failures are the service's own: upstream_error, timeout, internal_error (5xx and connection
errors map to these). A validation_error or not_found is an answer, so it counts as a success.
Every transition is stored as a BreakerTransition row by the process that made it; an
outcome that belongs to an earlier state (a generation counter tells) is ignored.

State lives in Redis (Lua scripts, atomic, one round trip per decision) or, without Redis,
in process memory. If Redis fails, calls pass (fail open) and the health page says so.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from dataclasses import dataclass, fields
from typing import Any

from django.conf import settings
from django.core import checks

from . import live, shared_state
from .audit import audit_record
from .contracts import BREAKER_FAILURE_CODES, ErrorCode, MCPError, OperationContext
from .models import BreakerTransition
from .pipeline import Guard
from .prometheus import observe_breaker_transition
from .server import Operation

logger = logging.getLogger(__name__)

BUCKETS = 10
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """One service's thresholds: settings.MCP_BREAKERS["default"] overlaid with its own entry."""

    enabled: bool = True
    failure_rate_threshold: float = 50.0  # percent of calls in the window
    slow_call_rate_threshold: float = 100.0  # percent; above 100 disables it
    slow_call_duration: float = 10.0  # seconds
    minimum_calls: int = 10
    window: float = 60.0  # seconds
    open_duration: float = 30.0  # seconds
    half_open_calls: int = 3
    half_open_max_wait: float = 120.0  # seconds

    @property
    def window_ms(self) -> int:
        return int(self.window * 1000)

    @property
    def bucket_ms(self) -> int:
        return max(1, math.ceil(self.window * 1000 / BUCKETS))


_FIELDS = {f.name: f.type for f in fields(BreakerConfig)}
_config_cache: dict[tuple[int, str], BreakerConfig] = {}


def config_problems(entry: Any, where: str) -> list[str]:
    """Every problem of one MCP_BREAKERS entry, in words (used by the system check)."""
    if not isinstance(entry, dict):
        return [f"{where}: must be a dict"]
    problems = []
    for key, value in entry.items():
        if key not in _FIELDS:
            problems.append(f"{where}: unknown key {key!r} (known: {', '.join(sorted(_FIELDS))})")
        elif key == "enabled":
            if not isinstance(value, bool):
                problems.append(f"{where}.enabled: must be true or false")
        elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            problems.append(f"{where}.{key}: must be a non-negative number, got {value!r}")
        elif key in ("minimum_calls", "half_open_calls") and (value < 1 or value != int(value)):
            problems.append(f"{where}.{key}: must be a whole number >= 1, got {value!r}")
        elif key in ("window", "open_duration", "half_open_max_wait") and value <= 0:
            problems.append(f"{where}.{key}: must be more than 0 seconds")
    return problems


def config_for(service: str) -> BreakerConfig:
    breakers = settings.MCP_BREAKERS
    cache_key = (id(breakers), service)  # override_settings swaps the dict, so the cache follows
    config = _config_cache.get(cache_key)
    if config is None:
        merged = {**breakers.get("default", {}), **breakers.get(service, {})}
        config = BreakerConfig(**{k: v for k, v in merged.items() if k in _FIELDS})
        if len(_config_cache) > 1000:
            _config_cache.clear()
        _config_cache[cache_key] = config
    return config


@checks.register("mcp")
def check_breaker_settings(app_configs, **kwargs):
    breakers = settings.MCP_BREAKERS
    if not isinstance(breakers, dict):
        return [checks.Error("MCP_BREAKERS: must be a dict of service -> settings", id="mcp.E101")]
    return [
        checks.Error(problem, id="mcp.E101")
        for service, entry in breakers.items()
        for problem in config_problems(entry, f"MCP_BREAKERS[{service!r}]")
    ]


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    state: str
    generation: int
    retry_after: float  # seconds
    transition: str  # "" or "from>to"


@dataclass(frozen=True, slots=True)
class Outcome:
    transition: str
    calls: int
    failures: int
    slow: int


# --- Redis: three scripts, each one atomic round trip ---
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', KEYS[1], 'state', 'gen', 'since', 'issued', 'tcalls')
local state = s[1] or 'closed'
local gen = tonumber(s[2] or '0')
local since = tonumber(s[3] or '0')
local issued = tonumber(s[4] or '0')
local reported = tonumber(s[5] or '0')
local open_ms = tonumber(ARGV[1])
local permitted = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local moved = ''
-- Every trial permit handed out, not all reported, for too long: a worker died holding one.
if state == 'half_open' and issued >= permitted and reported < issued and now - since >= max_wait then
  gen = gen + 1
  redis.call('HSET', KEYS[1], 'state', 'open', 'gen', gen, 'since', now, 'issued', 0)
  return {0, 'open', gen, open_ms, 'half_open>open'}
end
if state == 'open' then
  if now - since < open_ms then
    return {0, 'open', gen, open_ms - (now - since), ''}
  end
  gen = gen + 1
  state = 'half_open'
  issued = 0
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'gen', gen, 'since', now, 'issued', 0,
             'tcalls', 0, 'tfail', 0, 'tslow', 0)
  moved = 'open>half_open'
end
if state == 'half_open' then
  if issued >= permitted then
    return {0, 'half_open', gen, 1000, moved}
  end
  redis.call('HINCRBY', KEYS[1], 'issued', 1)
  return {1, 'half_open', gen, 0, moved}
end
return {1, 'closed', gen, 0, ''}
"""

_RECORD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', KEYS[1], 'state', 'gen')
local state = s[1] or 'closed'
local gen = tonumber(s[2] or '0')
if tonumber(ARGV[1]) ~= gen then
  return {'', 0, 0, 0}
end
local failed = tonumber(ARGV[3])
local slow = tonumber(ARGV[4])
local fthr = tonumber(ARGV[5])
local sthr = tonumber(ARGV[6])
if ARGV[2] == 'c' then
  if state ~= 'closed' then
    return {'', 0, 0, 0}
  end
  local window = tonumber(ARGV[8])
  local bucket_ms = tonumber(ARGV[9])
  local b = math.floor(now / bucket_ms)
  redis.call('HINCRBY', KEYS[2], 'c' .. b, 1)
  if failed == 1 then redis.call('HINCRBY', KEYS[2], 'f' .. b, 1) end
  if slow == 1 then redis.call('HINCRBY', KEYS[2], 's' .. b, 1) end
  local oldest = b - math.ceil(window / bucket_ms) + 1
  local flat = redis.call('HGETALL', KEYS[2])
  local calls, fails, slows = 0, 0, 0
  for i = 1, #flat, 2 do
    local name = flat[i]
    if tonumber(string.sub(name, 2)) < oldest then
      redis.call('HDEL', KEYS[2], name)
    else
      local kind = string.sub(name, 1, 1)
      local v = tonumber(flat[i + 1])
      if kind == 'c' then calls = calls + v elseif kind == 'f' then fails = fails + v else slows = slows + v end
    end
  end
  redis.call('PEXPIRE', KEYS[2], window + bucket_ms)
  if calls >= tonumber(ARGV[7]) and (fails * 100 >= fthr * calls or slows * 100 >= sthr * calls) then
    redis.call('HSET', KEYS[1], 'state', 'open', 'gen', gen + 1, 'since', now, 'issued', 0)
    redis.call('DEL', KEYS[2])
    return {'closed>open', calls, fails, slows}
  end
  return {'', calls, fails, slows}
end
if state ~= 'half_open' then
  return {'', 0, 0, 0}
end
local calls = redis.call('HINCRBY', KEYS[1], 'tcalls', 1)
local fails = redis.call('HINCRBY', KEYS[1], 'tfail', failed)
local slows = redis.call('HINCRBY', KEYS[1], 'tslow', slow)
if calls >= tonumber(ARGV[10]) then
  if fails * 100 >= fthr * calls or slows * 100 >= sthr * calls then
    redis.call('HSET', KEYS[1], 'state', 'open', 'gen', gen + 1, 'since', now, 'issued', 0)
    return {'half_open>open', calls, fails, slows}
  end
  redis.call('HSET', KEYS[1], 'state', 'closed', 'gen', gen + 1, 'since', now, 'issued', 0)
  redis.call('DEL', KEYS[2])
  return {'half_open>closed', calls, fails, slows}
end
return {'', calls, fails, slows}
"""

_RESET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', KEYS[1], 'state', 'gen')
local gen = tonumber(s[2] or '0') + 1
redis.call('HSET', KEYS[1], 'state', 'closed', 'gen', gen, 'since', now, 'issued', 0)
redis.call('DEL', KEYS[2])
return s[1] or 'closed'
"""


def _keys(service: str) -> list[str]:
    return [shared_state.make_key(f"br:{service}"), shared_state.make_key(f"br:{service}:w")]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _RedisBreakers:
    def __init__(self) -> None:
        self.scripts: dict[str, Any] = {}

    def _script(self, name: str, source: str) -> Any:
        script = self.scripts.get(name)
        if script is None:
            script = self.scripts[name] = shared_state.redis_client().register_script(source)
        return script

    def acquire(self, service: str, cfg: BreakerConfig) -> Verdict | None:
        try:
            allowed, state, gen, retry_ms, moved = shared_state.run_script(
                self._script("acquire", _ACQUIRE),
                _keys(service)[:1],
                [int(cfg.open_duration * 1000), cfg.half_open_calls, int(cfg.half_open_max_wait * 1000)],
                what="circuit breaker",
            )
        except shared_state.SharedStateUnavailable:
            return None
        return Verdict(bool(allowed), _text(state), int(gen), retry_ms / 1000, _text(moved))

    def record(self, service: str, cfg: BreakerConfig, kind: str, gen: int, failed: bool, slow: bool):
        try:
            moved, calls, fails, slows = shared_state.run_script(
                self._script("record", _RECORD),
                _keys(service),
                [
                    gen,
                    "t" if kind == HALF_OPEN else "c",
                    int(failed),
                    int(slow),
                    cfg.failure_rate_threshold,
                    cfg.slow_call_rate_threshold,
                    cfg.minimum_calls,
                    cfg.window_ms,
                    cfg.bucket_ms,
                    cfg.half_open_calls,
                ],
                what="circuit breaker",
            )
        except shared_state.SharedStateUnavailable:
            return None
        return Outcome(_text(moved), int(calls), int(fails), int(slows))

    def reset(self, service: str) -> str:
        return _text(
            shared_state.run_script(self._script("reset", _RESET), _keys(service), [], what="breaker reset")
        )

    def snapshot(self, service: str, cfg: BreakerConfig) -> dict[str, Any]:
        client = shared_state.redis_client()
        state_key, window_key = _keys(service)
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(state_key)
        pipe.hgetall(window_key)
        pipe.time()
        raw_state, raw_window, (sec, usec) = pipe.execute()
        now_ms = sec * 1000 + usec // 1000
        state = {_text(k): _text(v) for k, v in raw_state.items()}
        window = {_text(k): int(v) for k, v in raw_window.items()}
        return _snapshot(state, window, now_ms, cfg)


class _LocalBreakers:
    """The same state machine in process memory, for a deployment without Redis."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.states: dict[str, dict[str, Any]] = {}
        self.windows: dict[str, dict[str, int]] = {}

    @staticmethod
    def _now() -> int:
        return int(time.time() * 1000)

    def _state(self, service: str) -> dict[str, Any]:
        return self.states.setdefault(service, {"state": CLOSED, "gen": 0, "since": 0, "issued": 0})

    def acquire(self, service: str, cfg: BreakerConfig) -> Verdict:
        open_ms = int(cfg.open_duration * 1000)
        with self.lock:
            now, s = self._now(), self._state(service)
            moved = ""
            if (
                s["state"] == HALF_OPEN
                and s["issued"] >= cfg.half_open_calls
                and s["tcalls"] < s["issued"]
                and now - s["since"] >= cfg.half_open_max_wait * 1000
            ):
                s.update(state=OPEN, gen=s["gen"] + 1, since=now, issued=0)
                return Verdict(False, OPEN, s["gen"], open_ms / 1000, "half_open>open")
            if s["state"] == OPEN:
                if now - s["since"] < open_ms:
                    return Verdict(False, OPEN, s["gen"], (open_ms - (now - s["since"])) / 1000, "")
                s.update(state=HALF_OPEN, gen=s["gen"] + 1, since=now, issued=0, tcalls=0, tfail=0, tslow=0)
                moved = "open>half_open"
            if s["state"] == HALF_OPEN:
                if s["issued"] >= cfg.half_open_calls:
                    return Verdict(False, HALF_OPEN, s["gen"], 1.0, moved)
                s["issued"] += 1
                return Verdict(True, HALF_OPEN, s["gen"], 0.0, moved)
            return Verdict(True, CLOSED, s["gen"], 0.0, "")

    def record(self, service: str, cfg: BreakerConfig, kind: str, gen: int, failed: bool, slow: bool):
        with self.lock:
            now, s = self._now(), self._state(service)
            if gen != s["gen"]:
                return Outcome("", 0, 0, 0)
            tripped = lambda c, f, sl: (  # noqa: E731
                f * 100 >= cfg.failure_rate_threshold * c or sl * 100 >= cfg.slow_call_rate_threshold * c
            )
            if kind != HALF_OPEN:
                if s["state"] != CLOSED:
                    return Outcome("", 0, 0, 0)
                window = self.windows.setdefault(service, {})
                bucket = now // cfg.bucket_ms
                for prefix, hit in (("c", True), ("f", failed), ("s", slow)):
                    if hit:
                        window[f"{prefix}{bucket}"] = window.get(f"{prefix}{bucket}", 0) + 1
                oldest = bucket - math.ceil(cfg.window_ms / cfg.bucket_ms) + 1
                for name in [n for n in window if int(n[1:]) < oldest]:
                    del window[name]
                calls, fails, slows = (sum(v for n, v in window.items() if n[0] == p) for p in "cfs")
                if calls >= cfg.minimum_calls and tripped(calls, fails, slows):
                    s.update(state=OPEN, gen=gen + 1, since=now, issued=0)
                    window.clear()
                    return Outcome("closed>open", calls, fails, slows)
                return Outcome("", calls, fails, slows)
            if s["state"] != HALF_OPEN:
                return Outcome("", 0, 0, 0)
            s["tcalls"] += 1
            s["tfail"] += int(failed)
            s["tslow"] += int(slow)
            calls, fails, slows = s["tcalls"], s["tfail"], s["tslow"]
            if calls >= cfg.half_open_calls:
                to = OPEN if tripped(calls, fails, slows) else CLOSED
                s.update(state=to, gen=gen + 1, since=now, issued=0)
                if to == CLOSED:
                    self.windows.pop(service, None)
                return Outcome(f"half_open>{to}", calls, fails, slows)
            return Outcome("", calls, fails, slows)

    def reset(self, service: str) -> str:
        with self.lock:
            s = self._state(service)
            previous = s["state"]
            s.update(state=CLOSED, gen=s["gen"] + 1, since=self._now(), issued=0)
            self.windows.pop(service, None)
            return previous

    def snapshot(self, service: str, cfg: BreakerConfig) -> dict[str, Any]:
        with self.lock:
            state = {k: str(v) for k, v in self._state(service).items()}
            window = dict(self.windows.get(service, {}))
        return _snapshot(state, window, self._now(), cfg)

    def clear(self) -> None:
        with self.lock:
            self.states.clear()
            self.windows.clear()


def _snapshot(
    state: dict[str, str], window: dict[str, int], now_ms: int, cfg: BreakerConfig
) -> dict[str, Any]:
    current = state.get("state", CLOSED)
    since = int(float(state.get("since", 0) or 0))
    oldest = now_ms // cfg.bucket_ms - math.ceil(cfg.window_ms / cfg.bucket_ms) + 1
    recent = {n: v for n, v in window.items() if int(n[1:]) >= oldest}
    calls, fails, slows = (sum(v for n, v in recent.items() if n[0] == p) for p in "cfs")
    retry_after = None
    if current == OPEN:
        retry_after = max(0.0, (since + cfg.open_duration * 1000 - now_ms) / 1000)
    return {
        "state": current,
        "since": since / 1000 if since else None,
        "retry_after": retry_after,
        "window_calls": calls,
        "window_failures": fails,
        "window_slow": slows,
        "failure_rate": round(fails * 100 / calls, 1) if calls else None,
    }


_redis = _RedisBreakers()
_local = _LocalBreakers()


def _backend() -> _RedisBreakers | _LocalBreakers:
    return _redis if shared_state.uses_redis() else _local


def reset_local_state_for_tests() -> None:
    _local.clear()
    _redis.scripts.clear()


# --- transitions ---
def _reason(transition: str, cfg: BreakerConfig, outcome: Outcome | None) -> str:
    if transition == "open>half_open":
        return f"open for {cfg.open_duration:g}s; letting {cfg.half_open_calls} trial call(s) through"
    if transition == "half_open>open" and outcome is None:
        return f"trial calls did not finish within {cfg.half_open_max_wait:g}s"
    if outcome is None:
        return transition
    counts = f"{outcome.failures} failed and {outcome.slow} slow (>= {cfg.slow_call_duration:g}s) of {outcome.calls}"
    if transition == "closed>open":
        return (
            f"{counts} calls in the last {cfg.window:g}s (thresholds: {cfg.failure_rate_threshold:g}% failed, "
            f"{cfg.slow_call_rate_threshold:g}% slow)"
        )
    return f"trial calls: {counts}"


def record_transition(service: str, transition: str, reason: str) -> None:
    from_state, _, to_state = transition.partition(">")
    log = logger.warning if to_state == OPEN else logger.info
    log("circuit breaker %s: %s -> %s (%s)", service, from_state, to_state, reason)
    observe_breaker_transition(service, transition)
    try:
        BreakerTransition.objects.create(
            service=service[:50], from_state=from_state, to_state=to_state, reason=reason[:300]
        )
    except Exception:
        logger.exception("could not store the breaker transition of %s", service)
    # After the row: a page that refetches on the event finds the transition stored.
    live.breaker_changed(service, from_state, to_state, reason)


# --- the pipeline guard ---
class BreakerGuard(Guard):
    """Refuses calls while the service's breaker is open; feeds it every outcome."""

    def enter(self, op: Operation, ctx: OperationContext) -> Any:
        if not op.annotations.open_world:
            # A breaker protects callers from a failing upstream. Operations that only use our
            # own database have none: their failures are ours, and two Redis round trips per
            # call would buy nothing.
            return None
        cfg = config_for(op.service)
        if not cfg.enabled:
            return None
        verdict = _backend().acquire(op.service, cfg)
        if verdict is None:
            return None  # Redis unavailable: fail open
        if verdict.transition:
            record_transition(op.service, verdict.transition, _reason(verdict.transition, cfg, None))
        if not verdict.allowed:
            wait = max(verdict.retry_after, 0.001)
            raise MCPError(
                ErrorCode.CIRCUIT_OPEN,
                f"{op.service} is failing, so its circuit breaker is {verdict.state.replace('_', '-')} "
                f"and calls fail fast; retry in {math.ceil(wait)}s",
                details={"service": op.service, "breaker_state": verdict.state},
                retry_after=round(wait, 3),
            )
        return (verdict.state, verdict.generation, cfg)

    def exit(self, op, ctx, token, error_code, duration_s) -> None:
        if token is None:
            return
        state, generation, cfg = token
        failed = error_code in BREAKER_FAILURE_CODES and not _credentials_rejected(ctx)
        slow = duration_s >= cfg.slow_call_duration
        outcome = _backend().record(op.service, cfg, state, generation, failed, slow)
        if outcome is not None and outcome.transition:
            record_transition(op.service, outcome.transition, _reason(outcome.transition, cfg, outcome))


def _credentials_rejected(ctx) -> bool:
    """An upstream 401/403 means one credential is wrong (often one tenant's own key), not
    that the service is down: it must not open the breaker for every tenant."""
    error = getattr(ctx, "error", None)
    return error is not None and error.details.get("upstream_status") in (401, 403)


# --- selectors and services for the admin and the dashboard ---
def breaker_services() -> list[str]:
    """Every registered service plus any named in MCP_BREAKERS."""
    from .registry import get_registry

    names = set(get_registry().servers) | {n for n in settings.MCP_BREAKERS if n != "default"}
    return sorted(names)


def breaker_states() -> list[dict[str, Any]]:
    """The current state of every service's breaker (state, window counts, config)."""
    rows = []
    for service in breaker_services():
        cfg = config_for(service)
        try:
            snap = _backend().snapshot(service, cfg)
        except Exception as exc:  # noqa: BLE001 - Redis down: say so instead of failing the page
            snap = {"state": "unknown", "detail": f"state unavailable ({type(exc).__name__})"}
        rows.append({"service": service, "enabled": cfg.enabled, "config": cfg, **snap})
    return rows


def breaker_open_seconds(service: str) -> float | None:
    """Seconds until the service's open breaker lets a trial call through; None when it is not
    refusing calls now (closed, half-open, disabled, its open time over, or state unreadable).

    Reads the state only: it never moves the breaker or takes a trial permit.
    """
    cfg = config_for(service)
    if not cfg.enabled or (shared_state.uses_redis() and shared_state.health.paused()):
        return None
    try:
        snap = _backend().snapshot(service, cfg)
    except Exception:  # noqa: BLE001 - Redis down: the breakers fail open, so the check runs
        return None
    if snap["state"] != OPEN or not snap["retry_after"]:
        return None
    return snap["retry_after"]


def breaker_reset(service: str, *, user: Any) -> str:
    """Close a service's breaker by hand: stored as a transition and audited. Returns the old state."""
    if service not in breaker_services():
        raise ValueError(f"no breaker for service {service!r}")
    started = time.perf_counter()
    previous = _backend().reset(service)
    principal = f"user:{user.get_username()}"
    record_transition(service, f"{previous}>{CLOSED}", f"reset by {principal}")
    audit_record(
        request_id=uuid.uuid4().hex,
        transport="admin",
        principal_name=principal,
        api_key_id=None,
        user_id=user.pk,
        tenant_id=None,
        service=service,
        operation="breaker_reset",
        params={"from_state": previous},
        error_code=None,
        error_message="",
        duration_ms=(time.perf_counter() - started) * 1000,
        idempotency_key=None,
    )
    return previous
