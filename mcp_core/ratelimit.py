"""Per-tenant rate limits: calls per minute per (tenant, service), and calls in flight per tenant.

The limits come from the tenant's Plan (askpro.models.Plan: requests_per_minute,
max_concurrent_calls). A tenant without a plan gets the explicit settings
MCP_RATE_LIMIT_DEFAULT_PER_MINUTE and MCP_RATE_LIMIT_DEFAULT_CONCURRENCY, reported as the
policy "default" in every response, never a silent hidden limit. A limit of 0 refuses
every call. Calls without a tenant (platform operations) are not limited here.

Algorithm: GCRA (a token bucket of `limit` calls refilled evenly over the window) plus a
set of in-flight slots that expire at the call's deadline (a crashed worker cannot leak a
slot for long). Both are decided together by one Lua script in Redis (one round trip,
atomic: a call refused by either limit consumes nothing), or by the same logic in
process memory without Redis. If Redis fails, calls are let through (fail open).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models.signals import post_save

from askpro.models import Company, Plan

from . import shared_state
from .contracts import ErrorCode, MCPError, OperationContext
from .pipeline import Guard
from .prometheus import observe_rate_limit_refusal
from .server import Operation

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60  # the Plan's limits are per minute
SLOT_MARGIN_SECONDS = 30.0  # an in-flight slot outlives the call's deadline by this much at most

# KEYS: rate (GCRA theoretical arrival time), inflight (zset slot -> expiry ms)
# ARGV: limit, window_ms, max_concurrent, slot_id, slot_expires_in_ms, cost (calls this one counts as)
# Returns {allowed 0/1, reason, remaining, retry_after_ms, reset_ms, in_flight}
_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local max_conc = tonumber(ARGV[3])
local in_flight = 0
if max_conc >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  in_flight = redis.call('ZCARD', KEYS[2])
  if in_flight >= max_conc then
    return {0, 'concurrency', 0, 1000, 0, in_flight}
  end
end
if limit <= 0 then
  return {0, 'rate', 0, window, window, in_flight}
end
local interval = window / limit
local cost = tonumber(ARGV[6] or '1')
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval * cost
local allow_at = new_tat - window
if now < allow_at then
  return {0, 'rate', 0, math.ceil(allow_at - now), math.ceil(tat - now), in_flight}
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1000)
if max_conc >= 0 then
  local ttl = tonumber(ARGV[5])
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ttl)
  in_flight = in_flight + 1
end
local remaining = math.floor((window - (new_tat - now)) / interval + 1e-9)
return {1, 'ok', remaining, 0, math.ceil(new_tat - now), in_flight}
"""


@dataclass(frozen=True, slots=True)
class Limits:
    policy: str  # the plan's code, or "default" for a tenant without a plan
    per_minute: int
    concurrency: int


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str  # ok | rate | concurrency
    remaining: int
    retry_after: float  # seconds
    reset: float  # seconds until the bucket is full again
    in_flight: int


# --- limits from the plan, cached briefly per process ---
_plan_cache: dict[int, tuple[float, Limits]] = {}
_plan_lock = threading.Lock()


def clear_plan_cache(**kwargs: Any) -> None:
    with _plan_lock:
        _plan_cache.clear()


post_save.connect(clear_plan_cache, sender=Plan, dispatch_uid="mcp_core.ratelimit.plan_saved")


def default_limits() -> Limits:
    return Limits(
        policy="default",
        per_minute=settings.MCP_RATE_LIMIT_DEFAULT_PER_MINUTE,
        concurrency=settings.MCP_RATE_LIMIT_DEFAULT_CONCURRENCY,
    )


def limits_for(tenant: Company) -> Limits:
    """The tenant's limits. Plan edits reach other processes within MCP_RATE_LIMIT_PLAN_CACHE_SECONDS."""
    if tenant.plan_id is None:
        return default_limits()
    now = time.monotonic()
    cached = _plan_cache.get(tenant.plan_id)
    if cached is not None and cached[0] > now:
        return cached[1]
    row = Plan.objects.filter(pk=tenant.plan_id).values_list(
        "code", "requests_per_minute", "max_concurrent_calls"
    )
    found = row.first()
    limits = (
        default_limits()
        if found is None
        else Limits(policy=found[0], per_minute=found[1], concurrency=found[2])
    )
    with _plan_lock:
        _plan_cache[tenant.plan_id] = (now + settings.MCP_RATE_LIMIT_PLAN_CACHE_SECONDS, limits)
    return limits


# --- the two backends ---
class _LocalLimiter:
    """The same decision as the Lua script, in this process's memory (no Redis configured)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tat: dict[str, float] = {}
        self.slots: dict[str, dict[str, float]] = {}

    def decide(
        self, rate_key: str, slot_key: str, limits: Limits, slot: str, slot_ttl_ms: int, cost: int = 1
    ) -> Decision:
        window = WINDOW_SECONDS * 1000.0
        with self.lock:
            now = time.monotonic() * 1000
            slots = self.slots.setdefault(slot_key, {})
            for expired in [s for s, until in slots.items() if until <= now]:
                del slots[expired]
            if len(slots) >= limits.concurrency:
                return Decision(False, "concurrency", 0, 1.0, 0.0, len(slots))
            if limits.per_minute <= 0:
                return Decision(False, "rate", 0, window / 1000, window / 1000, len(slots))
            interval = window / limits.per_minute
            tat = max(self.tat.get(rate_key, 0.0), now)
            new_tat = tat + interval * cost
            if now < new_tat - window:
                return Decision(
                    False,
                    "rate",
                    0,
                    math.ceil(new_tat - window - now) / 1000,
                    math.ceil(tat - now) / 1000,
                    len(slots),
                )
            self.tat[rate_key] = new_tat
            slots[slot] = now + slot_ttl_ms
            remaining = math.floor((window - (new_tat - now)) / interval + 1e-9)
            return Decision(True, "ok", remaining, 0.0, math.ceil(new_tat - now) / 1000, len(slots))

    def release(self, slot_key: str, slot: str) -> None:
        with self.lock:
            self.slots.get(slot_key, {}).pop(slot, None)

    def reset(self) -> None:
        with self.lock:
            self.tat.clear()
            self.slots.clear()


_local = _LocalLimiter()
_script: Any = None


def _redis_script() -> Any:
    global _script
    if _script is None:
        _script = shared_state.redis_client().register_script(_LUA)
    return _script


def decide(
    tenant_id: int, service: str, limits: Limits, slot: str, slot_ttl_s: float, cost: int = 1
) -> Decision | None:
    """Take `cost` tokens (one per call; a batch's items) and one slot, or refuse. None when Redis
    is unavailable (fail open)."""
    rate_key = shared_state.make_key(f"rl:r:{tenant_id}:{service}")
    slot_key = shared_state.make_key(f"rl:c:{tenant_id}")
    slot_ttl_ms = int(slot_ttl_s * 1000)
    if not shared_state.uses_redis():
        return _local.decide(rate_key, slot_key, limits, slot, slot_ttl_ms, cost)
    try:
        allowed, reason, remaining, retry_ms, reset_ms, in_flight = shared_state.run_script(
            _redis_script(),
            [rate_key, slot_key],
            [limits.per_minute, WINDOW_SECONDS * 1000, limits.concurrency, slot, slot_ttl_ms, cost],
            what="rate limit",
        )
    except shared_state.SharedStateUnavailable:
        return None
    reason = reason.decode() if isinstance(reason, bytes) else reason
    return Decision(bool(allowed), reason, int(remaining), retry_ms / 1000, reset_ms / 1000, int(in_flight))


def release(tenant_id: int, slot: str) -> None:
    slot_key = shared_state.make_key(f"rl:c:{tenant_id}")
    if not shared_state.uses_redis():
        _local.release(slot_key, slot)
        return
    if shared_state.health.paused():
        return  # the slot expires on its own at the call's deadline
    try:
        shared_state.redis_client().zrem(slot_key, slot)
    except Exception as exc:  # noqa: BLE001 - any Redis failure: the slot expires by itself
        shared_state.health.failed("rate limit release", exc)


def reset_local_state_for_tests() -> None:
    _local.reset()
    clear_plan_cache()


def rate_limit_headers(info: dict[str, Any] | None) -> dict[str, str]:
    """IETF draft-ietf-httpapi-ratelimit-headers fields from a response's metadata["rate_limit"]."""
    if not info:
        return {}
    name = str(info["policy"]).replace("\\", "").replace('"', "")
    return {
        "RateLimit-Policy": f'"{name}";q={info["limit"]};w={info["window"]}',
        "RateLimit": f'"{name}";r={info["remaining"]};t={math.ceil(info["reset"])}',
    }


class RateLimitGuard(Guard):
    """The pipeline guard: refuses with rate_limited (and retry_after) before execution,
    frees the in-flight slot after it, and notes the limiter state in ctx.metadata["rate_limit"]."""

    def enter(self, op: Operation, ctx: OperationContext) -> Any:
        tenant = ctx.tenant
        if tenant is None:
            return None
        limits = limits_for(tenant)
        if ctx.weight > limits.per_minute > 0:
            # Could never pass, however long the caller waited: say so instead of a retry_after.
            raise MCPError(
                ErrorCode.VALIDATION_ERROR,
                f"This call counts as {ctx.weight} calls and plan {limits.policy!r} allows "
                f"{limits.per_minute} per minute to {op.service}; send at most {limits.per_minute} at once",
                details={"limit": "rate", "policy": limits.policy, "per_minute": limits.per_minute,
                         "weight": ctx.weight},
            )  # fmt: skip
        slot = uuid.uuid4().hex
        decision = decide(
            tenant.pk, op.service, limits, slot, ctx.remaining() + SLOT_MARGIN_SECONDS, ctx.weight
        )
        if decision is None:
            return None  # fail open: nothing taken, nothing to release
        ctx.metadata["rate_limit"] = {
            "policy": limits.policy,
            "limit": limits.per_minute,
            "window": WINDOW_SECONDS,
            "remaining": decision.remaining,
            "reset": decision.reset,
        }
        if decision.allowed:
            return (tenant.pk, slot)
        observe_rate_limit_refusal(op.service, decision.reason or "rate")
        if decision.reason == "concurrency":
            raise MCPError(
                ErrorCode.RATE_LIMITED,
                f"Too many calls in flight for this tenant (plan {limits.policy!r} allows "
                f"{limits.concurrency} at once); retry shortly",
                details={
                    "limit": "concurrency",
                    "policy": limits.policy,
                    "max_in_flight": limits.concurrency,
                },
                retry_after=decision.retry_after,
            )
        counted = f" (this call counts as {ctx.weight})" if ctx.weight > 1 else ""
        raise MCPError(
            ErrorCode.RATE_LIMITED,
            f"Rate limit reached: plan {limits.policy!r} allows {limits.per_minute} calls per minute "
            f"to {op.service}{counted}; retry in {math.ceil(decision.retry_after)}s",
            details={"limit": "rate", "policy": limits.policy, "per_minute": limits.per_minute},
            retry_after=decision.retry_after,
        )

    def exit(self, op, ctx, token, error_code, duration_s) -> None:
        if token is not None:
            release(*token)
