"""Sentry's web API over the shared HTTP client base."""

from __future__ import annotations

import re
from typing import Any

import requests
from django.conf import settings

from mcp_core.contracts import OperationContext
from mcp_core.http import UpstreamClient

_NEXT = re.compile(r'rel="next"; results="(?P<results>true|false)"; cursor="(?P<cursor>[^"]+)"')


class SentryClient(UpstreamClient):
    """GET-only access to one organisation's issues, events and performance table."""

    service = "sentry"

    def __init__(self, *, token: str, base_url: str | None = None, org: str | None = None) -> None:
        super().__init__(
            base_url=f"{(base_url or settings.SENTRY_BASE_URL).rstrip('/')}/api/0",
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )
        self.org = org or settings.SENTRY_ORG

    def error_message(self, response: requests.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return response.reason or f"HTTP {response.status_code}"
        if isinstance(body, dict):
            if isinstance(body.get("detail"), str):
                return body["detail"]
            # DRF field errors: {"field": ["message"]}
            return "; ".join(
                f"{k}: {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in body.items()
            )
        return response.reason or f"HTTP {response.status_code}"

    def list_issues(
        self,
        *,
        ctx: OperationContext | None,
        query: str,
        sort: str,
        limit: int,
        stats_period: str,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        params = {"query": query, "sort": sort, "limit": limit, "statsPeriod": stats_period}
        if settings.SENTRY_PROJECT and settings.SENTRY_PROJECT_ID:
            params["project"] = settings.SENTRY_PROJECT_ID
        if cursor:
            params["cursor"] = cursor
        response = self.request("GET", f"organizations/{self.org}/issues/", ctx=ctx, params=params)
        match = _NEXT.search(response.headers.get("Link", ""))
        next_cursor = match.group("cursor") if match and match.group("results") == "true" else None
        return response.json(), next_cursor

    def get_issue(self, issue_id: str, *, ctx: OperationContext | None) -> dict[str, Any]:
        return self.request("GET", f"organizations/{self.org}/issues/{issue_id}/", ctx=ctx).json()

    def get_event(self, issue_id: str, event_id: str, *, ctx: OperationContext | None) -> dict[str, Any]:
        return self.request(
            "GET", f"organizations/{self.org}/issues/{issue_id}/events/{event_id}/", ctx=ctx
        ).json()

    def performance(self, *, ctx: OperationContext | None, stats_period: str, limit: int) -> dict[str, Any]:
        params = {
            "field": ["transaction", "p50()", "p95()", "count()", "failure_rate()"],
            "query": "event.type:transaction",
            "statsPeriod": stats_period,
            "sort": "-count()",
            "per_page": limit,
        }
        return self.request("GET", f"organizations/{self.org}/events/", ctx=ctx, params=params).json()
