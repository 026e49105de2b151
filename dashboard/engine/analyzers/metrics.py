"""Analyzers over the call metrics: slow operations, error-rate rises, breakers, rate limits."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from datetime import timedelta as td

from django.db.models import Count

from askpro.models import Company
from mcp_core.models import AuditEntry
from mcp_core.registry import get_registry

from ... import integrations
from ...rollups import floor_hour
from ...selectors import _latency, metric_rows
from ..base import AnalysisContext, Analyzer, Finding, severity_at_least


def _iso(moment) -> str:
    return moment.isoformat(timespec="seconds")


class SlowOperations(Analyzer):
    name = "slow_operations"
    description = "Operations whose p95 latency over the last hour is above the threshold."
    defaults = {"p95_ms": 1000.0, "min_calls": 20, "window_minutes": 60}

    def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        since = ctx.now - td(minutes=self.option("window_minutes"))
        threshold = float(self.option("p95_ms"))
        findings = []
        for row in metric_rows(since, group=["service", "operation"], bucket=None, hourly=False):
            stats = _latency(row)
            if stats["calls"] < self.option("min_calls") or (stats["p95_ms"] or 0) <= threshold:
                continue
            key = f"{row['service']}.{row['operation']}"
            findings.append(
                Finding(
                    fingerprint=key,
                    severity=severity_at_least(
                        stats["p95_ms"] / threshold, [(1, "medium"), (3, "high")], "medium"
                    ),
                    title=f"{key} is slow: p95 {stats['p95_ms']:.0f} ms over the last hour",
                    evidence={
                        "window": {"since": _iso(since), "until": _iso(ctx.now)},
                        "threshold_ms": threshold,
                        **stats,
                    },
                    suggested_action=(
                        f"Find what {key} waits on: compare its p95 with the upstream's own latency "
                        "(an upstream slowdown shows on every operation of the service), look for a "
                        "slow query in the database analyzers, and cache results that change rarely."
                    ),
                )
            )
        return findings


class ErrorRateRise(Analyzer):
    name = "error_rate_rise"
    description = "Services whose error rate in the last hour rose against the 24 hours before."
    defaults = {"min_calls": 20, "min_rate": 0.05, "factor": 2.0, "min_increase": 0.05}

    def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        current_since = ctx.now - td(hours=1)
        previous_until = floor_hour(current_since)
        previous_since = previous_until - td(hours=24)
        current = {
            r["service"]: r for r in metric_rows(current_since, group=["service"], bucket=None, hourly=False)
        }
        previous = {
            r["service"]: r
            for r in metric_rows(
                previous_since, group=["service"], bucket=None, hourly=True, until=previous_until
            )
        }
        findings = []
        for service, row in current.items():
            calls, errors = row["calls"] or 0, row["errors"] or 0
            if calls < self.option("min_calls"):
                continue
            rate = errors / calls
            before = previous.get(service)
            prev_calls = (before or {}).get("calls") or 0
            prev_rate = (before["errors"] or 0) / prev_calls if prev_calls else 0.0
            if rate < self.option("min_rate"):
                continue
            if rate < prev_rate * self.option("factor") or rate - prev_rate < self.option("min_increase"):
                continue
            findings.append(
                Finding(
                    fingerprint=service,
                    severity=severity_at_least(rate, [(0, "medium"), (0.2, "high"), (0.5, "critical")]),
                    title=f"{service}: error rate {rate:.1%} in the last hour (before: {prev_rate:.1%})",
                    evidence={
                        "window": {"since": _iso(current_since), "until": _iso(ctx.now)},
                        "previous_window": {"since": _iso(previous_since), "until": _iso(previous_until)},
                        "calls": calls,
                        "errors": errors,
                        "error_rate": round(rate, 4),
                        "previous_calls": prev_calls,
                        "previous_error_rate": round(prev_rate, 4),
                    },
                    suggested_action=(
                        f"Open the audit log filtered on service {service} and errors for the last hour: "
                        "a single error code points at the cause (upstream_error: the provider; timeout: "
                        "latency; internal_error: our code, see Sentry). Check the provider's status page."
                    ),
                )
            )
        return findings


class BreakerFlapping(Analyzer):
    name = "breaker_flapping"
    description = "Circuit breakers that opened repeatedly in the last hour."
    defaults = {"min_opens": 3, "window_minutes": 60}

    def unavailable(self) -> str | None:
        return integrations.breaker_transitions_missing()

    def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        since = ctx.now - td(minutes=self.option("window_minutes"))
        data = integrations.breaker_transitions(since, limit=10_000)
        opens: dict[str, int] = defaultdict(int)
        transitions: dict[str, int] = defaultdict(int)
        for row in data["items"]:
            transitions[row["service"]] += 1
            if row["to_state"] == "open":
                opens[row["service"]] += 1
        findings = []
        for service, count in opens.items():
            if count < self.option("min_opens"):
                continue
            findings.append(
                Finding(
                    fingerprint=service,
                    severity="high",
                    title=f"The {service} breaker opened {count} times in the last hour",
                    evidence={
                        "window": {"since": _iso(since), "until": _iso(ctx.now)},
                        "opens": count,
                        "transitions": transitions[service],
                    },
                    suggested_action=(
                        f"{service} fails intermittently: the breaker keeps closing and re-opening. "
                        "Check the upstream's latency against the operation timeout, and lengthen the "
                        "breaker's recovery time so that half-open probes are not spent too early."
                    ),
                )
            )
        return findings


class RateLimitSaturation(Analyzer):
    name = "rate_limit_saturation"
    description = "Tenants refused by the rate limiter, or running close to their plan's limit."
    defaults = {"min_refusals": 10, "saturation": 0.9, "window_minutes": 60}

    def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        since = ctx.now - td(minutes=self.option("window_minutes"))
        refusals = {
            (r["tenant_id"], r["service"]): r["n"]
            for r in AuditEntry.objects.filter(created_at__gte=since, error_code="rate_limited")
            .exclude(tenant_id=None)
            .values("tenant_id", "service")
            .annotate(n=Count("id"))
            .order_by()
        }
        peaks: dict[tuple[int, str], int] = defaultdict(int)
        per_minute: dict[tuple[int, str, object], int] = defaultdict(int)
        for row in metric_rows(since, group=["tenant_id", "service"], bucket="minute", hourly=False):
            if row["tenant_id"]:
                per_minute[(row["tenant_id"], row["service"], row["t"])] += row["calls"] or 0
        for (tenant_id, service, _), calls in per_minute.items():
            peaks[(tenant_id, service)] = max(peaks[(tenant_id, service)], calls)
        tenants = {
            c.pk: c
            for c in Company.objects.select_related("plan").filter(
                pk__in={t for t, _ in refusals} | {t for t, _ in peaks} or {-1}
            )
        }
        findings = []
        for key in sorted(set(refusals) | set(peaks)):
            tenant_id, service = key
            company = tenants.get(tenant_id)
            if company is None:
                continue
            limit = company.plan.requests_per_minute if company.plan else None
            refused = refusals.get(key, 0)
            peak = peaks.get(key, 0)
            ratio = peak / limit if limit else 0.0
            if refused < self.option("min_refusals") and ratio < self.option("saturation"):
                continue
            findings.append(
                Finding(
                    fingerprint=f"{tenant_id}:{service}",
                    severity="high" if refused >= self.option("min_refusals") else "medium",
                    title=(
                        f"{company.name} is at its {service} rate limit: {refused} refused, "
                        f"peak {peak}/min of {limit}/min"
                    ),
                    evidence={
                        "window": {"since": _iso(since), "until": _iso(ctx.now)},
                        "tenant_id": tenant_id,
                        "tenant": company.slug,
                        "service": service,
                        "plan": company.plan.code if company.plan else None,
                        "limit_per_minute": limit,
                        "peak_calls_per_minute": peak,
                        "peak_ratio": round(ratio, 3),
                        "refused": refused,
                    },
                    suggested_action=(
                        f"Ask {company.name} whether the volume is expected: if so, move them to a plan "
                        "with a higher limit; if not, look for a retry loop in their integration "
                        "(the audit log shows the calls and their keys)."
                    ),
                )
            )
        return findings


class BreakerStuckHalfOpen(Analyzer):
    name = "breaker_half_open"
    description = "Breakers left half-open for long although the service's recent calls succeed."
    defaults = {"min_minutes": 10, "calls_window_minutes": 10, "max_error_rate": 0.0, "min_calls": 5}
    can_heal = True
    heal_description = (
        "Closes the breaker (mcp_core.breaker.breaker_reset), recorded as a transition and audited."
    )

    def unavailable(self) -> str | None:
        return integrations.breaker_transitions_missing()

    def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        states = integrations.breaker_states(sorted(get_registry().servers))
        if not states["available"]:
            return []
        since = ctx.now - td(minutes=self.option("min_minutes"))
        calls_since = ctx.now - td(minutes=self.option("calls_window_minutes"))
        recent = {
            r["service"]: r for r in metric_rows(calls_since, group=["service"], bucket=None, hourly=False)
        }
        findings = []
        for service, state in states["states"].items():
            if state.get("state") != "half_open" or not state.get("since"):
                continue
            entered = datetime.fromtimestamp(state["since"], tz=UTC)
            if entered > since:
                continue
            row = recent.get(service) or {"calls": 0, "errors": 0}
            calls, errors = row["calls"] or 0, row["errors"] or 0
            if calls < self.option("min_calls") or errors / calls > self.option("max_error_rate"):
                continue
            findings.append(
                Finding(
                    fingerprint=service,
                    severity="medium",
                    title=f"The {service} breaker has been half-open since {entered:%H:%M} UTC while calls succeed",
                    evidence={
                        "window": {"since": _iso(calls_since), "until": _iso(ctx.now)},
                        "half_open_since": _iso(entered),
                        "calls": calls,
                        "errors": errors,
                    },
                    suggested_action=(
                        f"{service} answers again: close the breaker (admin: circuit breakers, reset), or "
                        "let the engine do it by enabling self-healing for breaker_half_open."
                    ),
                )
            )
        return findings

    def heal(self, finding: Finding, ctx: AnalysisContext) -> str:
        previous = integrations.breaker_reset(finding.fingerprint, actor="system:improvements")
        return f"closed the {finding.fingerprint} breaker (was {previous})"
