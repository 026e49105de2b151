"""The Sentry server: the control plane's own errors and performance, read from Sentry."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings

from mcp_core.contracts import ErrorCode, MCPError, OperationContext
from mcp_core.health import HealthResult, HealthStatus
from mcp_core.server import MCPServer, operation

from .client import SentryClient
from .schemas import (
    ExceptionInfo,
    Frame,
    IssueDetail,
    IssueList,
    IssueParams,
    LatestEvent,
    ListIssuesParams,
    PerformanceParams,
    PerformanceResult,
    SearchIssuesParams,
    TransactionStats,
    issue_from_sentry,
)


def _token() -> str | None:
    return settings.SENTRY_AUTH_TOKEN or None


class SentryServer(MCPServer):
    """Errors and performance of the control plane itself, from Sentry's web API (platform keys)."""

    name = "sentry"
    description = "Sentry: the platform's own errors (issues, events) and request performance."

    def is_configured(self) -> bool:
        return _token() is not None

    def _client(self) -> SentryClient:
        token = _token()
        if token is None:
            raise MCPError(ErrorCode.NOT_CONFIGURED, "Sentry is not configured: set SENTRY_AUTH_TOKEN")
        return SentryClient(token=token)

    @operation(
        description="""List Sentry issues (grouped errors) of the control plane, newest activity first
        by default. Filter by status and level; page with next_cursor.""",
        params=ListIssuesParams,
        result=IssueList,
        scope="read",
        tenant_scoped=False,
        platform_only=True,
        read_only=True,
        open_world=True,
        timeout=15,
    )
    def list_issues(self, ctx: OperationContext, params: ListIssuesParams) -> IssueList:
        terms = [] if params.status == "all" else [f"is:{params.status}"]
        if params.level:
            terms.append(f"level:{params.level}")
        raw, next_cursor = self._client().list_issues(
            ctx=ctx,
            query=" ".join(terms),
            sort=params.sort,
            limit=params.limit,
            stats_period=params.period,
            cursor=params.cursor,
        )
        return IssueList(issues=[issue_from_sentry(item) for item in raw], next_cursor=next_cursor)

    @operation(
        description="""Search Sentry issues with Sentry's query syntax (free text such as an exception
        name, plus filters like is:unresolved or level:error).""",
        params=SearchIssuesParams,
        result=IssueList,
        scope="read",
        tenant_scoped=False,
        platform_only=True,
        read_only=True,
        open_world=True,
        timeout=15,
    )
    def search_issues(self, ctx: OperationContext, params: SearchIssuesParams) -> IssueList:
        raw, next_cursor = self._client().list_issues(
            ctx=ctx, query=params.query, sort="date", limit=params.limit, stats_period=params.period
        )
        return IssueList(issues=[issue_from_sentry(item) for item in raw], next_cursor=next_cursor)

    @operation(
        description="One Sentry issue with its metadata and tag summary.",
        params=IssueParams,
        result=IssueDetail,
        scope="read",
        tenant_scoped=False,
        platform_only=True,
        read_only=True,
        open_world=True,
        timeout=15,
    )
    def get_issue(self, ctx: OperationContext, params: IssueParams) -> IssueDetail:
        raw = self._client().get_issue(params.issue_id, ctx=ctx)
        return IssueDetail(
            issue=issue_from_sentry(raw),
            platform=str(raw.get("platform", "")),
            metadata=raw.get("metadata") or {},
            tags=raw.get("tags") or [],
        )

    @operation(
        description="""The latest event of a Sentry issue: message, tags, exception chain with stack frames,
        contexts. Use it to see why an error happened.""",
        params=IssueParams,
        result=LatestEvent,
        scope="read",
        tenant_scoped=False,
        platform_only=True,
        read_only=True,
        open_world=True,
        timeout=15,
    )
    def get_latest_event(self, ctx: OperationContext, params: IssueParams) -> LatestEvent:
        raw = self._client().get_event(params.issue_id, "latest", ctx=ctx)
        exceptions = []
        for entry in raw.get("entries") or []:
            if entry.get("type") != "exception":
                continue
            for value in (entry.get("data") or {}).get("values") or []:
                frames = ((value.get("stacktrace") or {}).get("frames")) or []
                exceptions.append(
                    ExceptionInfo(
                        type=str(value.get("type", "")),
                        value=str(value.get("value", "")),
                        frames=[
                            Frame(
                                filename=str(f.get("filename", "")),
                                function=str(f.get("function", "")),
                                lineno=f.get("lineno"),
                            )
                            for f in frames
                        ],
                    )
                )
        return LatestEvent(
            event_id=str(raw.get("eventID") or raw.get("id", "")),
            issue_id=str(raw.get("groupID", params.issue_id)),
            message=str(raw.get("message") or raw.get("title", "")),
            date=str(raw.get("dateCreated", "")),
            tags={str(t.get("key")): str(t.get("value")) for t in raw.get("tags") or []},
            exceptions=exceptions,
            contexts=raw.get("contexts") or {},
        )

    @operation(
        description="""Request performance from Sentry: per transaction (endpoint) the count, p50 and p95
        latency and failure rate over a period, busiest first.""",
        params=PerformanceParams,
        result=PerformanceResult,
        scope="read",
        tenant_scoped=False,
        platform_only=True,
        read_only=True,
        open_world=True,
        timeout=15,
    )
    def get_performance_data(self, ctx: OperationContext, params: PerformanceParams) -> PerformanceResult:
        raw = self._client().performance(ctx=ctx, stats_period=params.period, limit=params.limit)
        rows = raw.get("data") if isinstance(raw, dict) else None
        if not isinstance(rows, list):
            raise MCPError(ErrorCode.UPSTREAM_ERROR, "sentry: the events table answer had no data list")

        def number(value: Any) -> float | None:
            return None if value is None else float(value)

        return PerformanceResult(
            period=params.period,
            transactions=[
                TransactionStats(
                    transaction=str(row.get("transaction", "")),
                    count=int(row.get("count()") or 0),
                    p50_ms=number(row.get("p50()")),
                    p95_ms=number(row.get("p95()")),
                    failure_rate=number(row.get("failure_rate()")),
                )
                for row in rows[: params.limit]
            ],
        )

    def health(self) -> HealthResult:
        started = time.perf_counter()
        deadline_ctx = None
        try:
            client = self._client()
            client.request(
                "GET",
                f"organizations/{client.org}/issues/",
                ctx=deadline_ctx,
                params={"limit": 1, "query": "is:unresolved"},
            )
        except MCPError as exc:
            return HealthResult(HealthStatus.UNHEALTHY, exc.message)
        latency = (time.perf_counter() - started) * 1000
        return HealthResult(
            HealthStatus.DEGRADED if latency > 2000 else HealthStatus.HEALTHY,
            "issues endpoint answered",
            latency_ms=latency,
        )
