"""Params and results of the Sentry operations (msgspec Structs; JSON Schemas come from them)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from mcp_core.schemas import Params, Result

Meta = msgspec.Meta
IssueId = Annotated[str, Meta(pattern=r"^\d{1,20}$", description="Numeric issue id, e.g. 1001")]
StatsPeriod = Literal["1h", "24h", "7d", "14d", "30d"]


class Issue(Result):
    id: str
    short_id: str
    title: str
    culprit: str
    level: str
    status: str
    count: int
    user_count: int
    first_seen: str
    last_seen: str
    permalink: str


def issue_from_sentry(raw: dict[str, Any]) -> Issue:
    return Issue(
        id=str(raw.get("id", "")),
        short_id=str(raw.get("shortId", "")),
        title=str(raw.get("title", "")),
        culprit=str(raw.get("culprit") or ""),
        level=str(raw.get("level", "")),
        status=str(raw.get("status", "")),
        count=int(raw.get("count") or 0),  # Sentry sends the count as a string
        user_count=int(raw.get("userCount") or 0),
        first_seen=str(raw.get("firstSeen", "")),
        last_seen=str(raw.get("lastSeen", "")),
        permalink=str(raw.get("permalink", "")),
    )


class ListIssuesParams(Params):
    status: Literal["unresolved", "resolved", "ignored", "all"] = "unresolved"
    level: Literal["fatal", "error", "warning", "info", "debug"] | None = None
    sort: Literal["date", "new", "freq", "user"] = "date"
    period: StatsPeriod = "14d"
    limit: Annotated[int, Meta(ge=1, le=100)] = 25
    cursor: (
        Annotated[str, Meta(pattern=r"^\d+:\d+:[01]$", description="From a previous next_cursor")] | None
    ) = None


class IssueList(Result):
    issues: list[Issue]
    next_cursor: str | None


class SearchIssuesParams(Params):
    query: Annotated[
        str,
        Meta(min_length=1, max_length=200, description="Sentry search, e.g. 'TimeoutError is:unresolved'"),
    ]
    period: StatsPeriod = "14d"
    limit: Annotated[int, Meta(ge=1, le=100)] = 25


class IssueParams(Params):
    issue_id: IssueId


class IssueDetail(Result):
    issue: Issue
    platform: str
    metadata: dict[str, Any]
    tags: list[dict[str, Any]]


class Frame(Result):
    filename: str
    function: str
    lineno: int | None


class ExceptionInfo(Result):
    type: str
    value: str
    frames: list[Frame]


class LatestEvent(Result):
    event_id: str
    issue_id: str
    message: str
    date: str
    tags: dict[str, str]
    exceptions: list[ExceptionInfo]
    contexts: dict[str, Any]


class PerformanceParams(Params):
    period: StatsPeriod = "24h"
    limit: Annotated[int, Meta(ge=1, le=100)] = 20


class TransactionStats(Result):
    transaction: str
    count: int
    p50_ms: float | None
    p95_ms: float | None
    failure_rate: float | None


class PerformanceResult(Result):
    period: str
    transactions: list[TransactionStats]
