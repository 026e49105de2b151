"""Analyzers over the call metrics: slow operations, service-failure rises, breakers, rate limits,
services called without credentials and operations that keep refusing their callers.

Each failure is counted in its outcome class (mcp_core.contracts.outcome_class): analyzers about
a failing service read service failures only; caller errors and not_configured answers have
analyzers of their own that recommend what fixes them."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from datetime import timedelta as td

from django.db.models import Count, Q

from askpro.models import Company
from mcp_core.contracts import CALLER_ERROR_CODES, SERVICE_FAILURE_CODES, ErrorCode
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


def _codes(codes) -> list[str]:
    return sorted(str(code) for code in codes)


# What to look at first, by the code most of a service's failures carry.
_FAILURE_ACTIONS = {
    "upstream_error": (
        "The provider answers with errors: check its status page, and read the messages of the "
        "audit rows (service {service}, error code upstream_error) for the status it returned."
    ),
    "timeout": (
        "Calls run past their deadline: compare the provider's latency with the operations' "
        "timeouts, and look for a slow query if the service is our own database."
    ),
    "internal_error": ("Our own code fails: look the audit rows' request ids up in Sentry or the logs."),
    "circuit_open": (
        "The breaker refuses calls after earlier failures: read its transitions (admin: circuit "
        "breakers) for the failures that opened it."
    ),
}


class ErrorRateRise(Analyzer):
    name = "error_rate_rise"
    description = (
        "Services whose service-failure rate in the last hour rose against the 24 hours before. "
        "Counts upstream errors, timeouts, internal errors and open-breaker refusals only: never "
        "caller errors or not_configured answers."
    )
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
        rising = []
        for service, row in current.items():
            calls, failures = row["calls"] or 0, row["service_failures"] or 0
            if calls < self.option("min_calls"):
                continue
            rate = failures / calls
            before = previous.get(service)
            prev_calls = (before or {}).get("calls") or 0
            prev_rate = (before["service_failures"] or 0) / prev_calls if prev_calls else 0.0
            if rate < self.option("min_rate"):
                continue
            if rate < prev_rate * self.option("factor") or rate - prev_rate < self.option("min_increase"):
                continue
            rising.append((service, row, rate, prev_calls, prev_rate))
        by_code = self._failure_codes([service for service, *_ in rising], current_since)
        findings = []
        for service, row, rate, prev_calls, prev_rate in rising:
            codes = by_code.get(service, {})
            top = max(codes, key=codes.get) if codes else None
            action = _FAILURE_ACTIONS.get(top, "Open the audit log filtered on service {service}.")
            findings.append(
                Finding(
                    fingerprint=service,
                    severity=severity_at_least(rate, [(0, "medium"), (0.2, "high"), (0.5, "critical")]),
                    title=(
                        f"{service}: service failures {rate:.1%} of calls in the last hour "
                        f"(before: {prev_rate:.1%})" + (f", mostly {top}" if top else "")
                    ),
                    evidence={
                        "window": {"since": _iso(current_since), "until": _iso(ctx.now)},
                        "previous_window": {"since": _iso(previous_since), "until": _iso(previous_until)},
                        "counts": f"service failures: {', '.join(_codes(SERVICE_FAILURE_CODES))}",
                        "calls": row["calls"],
                        "service_failures": row["service_failures"],
                        "service_failure_rate": round(rate, 4),
                        "failures_by_code": codes,
                        "previous_calls": prev_calls,
                        "previous_service_failure_rate": round(prev_rate, 4),
                        # Beside the figure, not in it.
                        "caller_errors": row["caller_errors"] or 0,
                        "not_configured": row["not_configured"] or 0,
                    },
                    suggested_action=action.format(service=service),
                )
            )
        return findings

    @staticmethod
    def _failure_codes(services: list[str], since) -> dict[str, dict[str, int]]:
        """The failures of the window per service and code, from the audit log (only for the
        services found rising, so the engine reads nothing when all is well)."""
        found: dict[str, dict[str, int]] = defaultdict(dict)
        if not services:
            return found
        rows = (
            AuditEntry.objects.filter(
                service__in=services, created_at__gte=since, error_code__in=_codes(SERVICE_FAILURE_CODES)
            )
            .values("service", "error_code")
            .annotate(n=Count("id"))
            .order_by()
        )
        for row in rows:
            found[row["service"]][row["error_code"]] = row["n"]
        return found


class NotConfiguredCalls(Analyzer):
    name = "not_configured_calls"
    description = (
        "Services that answered not_configured (no credentials, at all or for a tenant) to calls in "
        "the last hour: a configuration to complete, never counted as the service failing."
    )
    defaults = {"min_calls": 5, "window_minutes": 60}

    def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        since = ctx.now - td(minutes=self.option("window_minutes"))
        services: dict[str, dict] = defaultdict(lambda: {"calls": 0, "not_configured": 0, "tenants": {}})
        for row in metric_rows(since, group=["service", "tenant_id"], bucket=None, hourly=False):
            entry = services[row["service"]]
            entry["calls"] += row["calls"] or 0
            entry["not_configured"] += row["not_configured"] or 0
            if row["not_configured"]:
                entry["tenants"][row["tenant_id"]] = row["not_configured"]
        flagged = {s: e for s, e in services.items() if e["not_configured"] >= self.option("min_calls")}
        names = dict(
            Company.objects.filter(
                pk__in={t for e in flagged.values() for t in e["tenants"] if t} or {-1}
            ).values_list("pk", "slug")
        )
        registry = get_registry()
        findings = []
        for service, entry in sorted(flagged.items()):
            server = registry.servers.get(service)
            configured = server.is_configured() if server is not None else None
            count, calls = entry["not_configured"], entry["calls"]
            tenants = sorted(names.get(t, f"#{t}") for t in entry["tenants"] if t)
            if configured:
                # The platform has credentials; some tenants lack their own.
                title = f"{service} has no credentials for {len(tenants) or 'some'} tenant(s): {count} calls answered not_configured"
                action = (
                    f"Add {service} credentials for {', '.join(tenants) or 'the tenants named in the audit log'} "
                    "(their tenant credentials in the admin), or stop their integrations calling it."
                )
            else:
                title = f"{service} is not configured but was called {count} times in the last hour"
                action = (
                    f"Configure credentials for {service} (its settings; the MCP dashboard's card says "
                    f"which are missing) or remove it from MCP_SERVERS so that clients are no longer "
                    f"offered its tools. These answers are not counted as {service} failing."
                )
            findings.append(
                Finding(
                    fingerprint=service,
                    severity="medium" if count / calls >= 0.5 else "low",
                    title=title,
                    evidence={
                        "window": {"since": _iso(since), "until": _iso(ctx.now)},
                        "counts": "not_configured answers (no credentials); not service failures",
                        "calls": calls,
                        "not_configured": count,
                        "not_configured_rate": round(count / calls, 4),
                        "service_configured": configured,
                        "tenants": tenants,
                    },
                    suggested_action=action,
                    tenant_ids=tuple(sorted(t for t in entry["tenants"] if t)),
                )
            )
        return findings


# What fixes a stream of caller errors, by the code most of them carry.
_CALLER_ACTIONS = {
    "forbidden": (
        "The callers lack the scope or tenant access {op} needs: grant it to the key(s) named "
        "here if they should have it, else fix the client that keeps calling it."
    ),
    "validation_error": (
        "Clients send params {op} refuses: the audit rows' messages name the field; compare the "
        "client with the tool's current schema (tools/list)."
    ),
    "unauthorized": (
        "Calls to {op} arrive without a valid key (expired or revoked?): give the client named "
        "here a current key."
    ),
    "not_found": (
        "Clients ask {op} for records that do not exist: a stale cache of ids, or ids of another tenant."
    ),
    "conflict": (
        "Clients repeat writes to {op} that conflict (a reused idempotency key, a slot taken): "
        "check their retry logic."
    ),
}


class CallerErrorRate(Analyzer):
    name = "caller_errors"
    description = (
        "Operations where many calls in the last hour were refused as the caller's mistake "
        "(forbidden, validation, unauthorized, not found, conflict), with the keys that made them. "
        "Rate-limit refusals are left to rate_limit_saturation."
    )
    defaults = {"min_errors": 20, "min_rate": 0.25, "window_minutes": 60, "max_operations": 50}

    def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        since = ctx.now - td(minutes=self.option("window_minutes"))
        candidates = sorted(
            (
                r
                for r in metric_rows(since, group=["service", "operation"], bucket=None, hourly=False)
                if (r["caller_errors"] or 0) >= self.option("min_errors")
                and r["caller_errors"] / r["calls"] >= self.option("min_rate")
            ),
            key=lambda r: -r["caller_errors"],
        )[: self.option("max_operations")]
        if not candidates:
            return []
        codes = _codes(CALLER_ERROR_CODES - {ErrorCode.RATE_LIMITED})
        where = Q(pk=-1)
        for row in candidates:
            where |= Q(service=row["service"], operation=row["operation"])
        by_code: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        by_principal: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for row in (
            AuditEntry.objects.filter(where, created_at__gte=since, error_code__in=codes)
            .values("service", "operation", "principal", "error_code")
            .annotate(n=Count("id"))
            .order_by()
        ):
            key = (row["service"], row["operation"])
            by_code[key][row["error_code"]] += row["n"]
            by_principal[key][row["principal"]] += row["n"]
        findings = []
        for row in candidates:
            key = (row["service"], row["operation"])
            counted = sum(by_code[key].values())
            if counted < self.option("min_errors"):
                continue  # mostly rate-limit refusals: rate_limit_saturation covers them
            op = f"{key[0]}.{key[1]}"
            rate = row["caller_errors"] / row["calls"]
            top = max(by_code[key], key=by_code[key].get)
            principals = sorted(by_principal[key].items(), key=lambda item: -item[1])[:5]
            findings.append(
                Finding(
                    fingerprint=op,
                    severity="medium" if rate >= 0.5 else "low",
                    title=f"{op}: {rate:.0%} of calls refused as caller errors in the last hour, mostly {top}",
                    evidence={
                        "window": {"since": _iso(since), "until": _iso(ctx.now)},
                        "counts": f"caller errors: {', '.join(_codes(CALLER_ERROR_CODES))}",
                        "calls": row["calls"],
                        "caller_errors": row["caller_errors"],
                        "caller_error_rate": round(rate, 4),
                        "by_code": dict(by_code[key]),
                        "by_principal": [{"principal": p, "errors": n} for p, n in principals],
                    },
                    suggested_action=_CALLER_ACTIONS[top].format(op=op),
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
                    tenant_ids=(tenant_id,),
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
            row = recent.get(service) or {"calls": 0, "service_failures": 0}
            calls, failures = row["calls"] or 0, row["service_failures"] or 0
            if calls < self.option("min_calls") or failures / calls > self.option("max_error_rate"):
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
                        "service_failures": failures,
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
