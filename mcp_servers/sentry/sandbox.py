"""A stateful fake of Sentry's web API (/api/0/...), following reference/upstream-apis.md §4:
Bearer tokens, DRF-style error bodies, Link-header cursor pagination, rate-limit headers on
every answer, issues, events and a Discover-style events table for performance data.
Its demo data (the project, issues, events and transactions) is sandbox_state.py."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from mcp_core.sandbox import SandboxRequest, SandboxResponse, SandboxServer, route

from .sandbox_state import demo_issues, demo_project, demo_transactions

# The demo token askpro/settings.py uses with SANDBOX=1.
DEMO_TOKEN = "sntrys_sandbox_demo"
DEMO_ORG = "askpro"
RATE_LIMIT = 40


class SentrySandbox(SandboxServer):
    """Sentry for one organisation with a project and a handful of issues."""

    service = "sentry"

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, token: str = DEMO_TOKEN, org: str = DEMO_ORG
    ) -> None:
        super().__init__(host, port)
        self.token = token
        self.org = org
        self.remaining = RATE_LIMIT
        self.project = demo_project()
        self.issues, self.events = demo_issues(org, self.project, dt.datetime.now(dt.UTC))
        self.transactions = demo_transactions()

    def describe(self) -> str:
        return f"demo token {self.token}, org {self.org}, {len(self.issues)} issues"

    # --- contract plumbing ---
    def _rate_headers(self) -> dict[str, str]:
        reset = int(dt.datetime.now(dt.UTC).timestamp()) + 1
        return {
            "X-Sentry-Rate-Limit-Limit": str(RATE_LIMIT),
            "X-Sentry-Rate-Limit-Remaining": str(max(self.remaining, 0)),
            "X-Sentry-Rate-Limit-Reset": str(reset),
            "X-Sentry-Rate-Limit-ConcurrentLimit": "25",
            "X-Sentry-Rate-Limit-ConcurrentRemaining": "24",
        }

    def _handle(self, request: SandboxRequest) -> SandboxResponse:
        if not request.path.startswith("/api/0/"):
            return SandboxResponse(404, {"detail": "The requested resource does not exist"})
        auth = request.headers.get("authorization", "")
        if auth != f"Bearer {self.token}":
            return SandboxResponse(401, {"detail": "Invalid token"}, self._rate_headers())
        with self.lock:
            self.remaining -= 1
            exhausted = self.remaining < 0
        if exhausted:
            return SandboxResponse(
                429,
                {
                    "detail": "You are attempting to use this endpoint too frequently. Limit is 40 requests in 1 seconds"
                },
                {**self._rate_headers(), "Retry-After": "1"},
            )
        response = super()._handle(request)
        response.headers = {**self._rate_headers(), **response.headers}
        return response

    def reset_rate_limit(self, remaining: int = RATE_LIMIT) -> None:
        with self.lock:
            self.remaining = remaining

    def fault_body(self, status: int) -> Any:
        return {"detail": f"Internal Error ({status})"}

    def not_found(self, request: SandboxRequest) -> SandboxResponse:
        return SandboxResponse(404, {"detail": "The requested resource does not exist"})

    def _org_or_404(self, request: SandboxRequest) -> SandboxResponse | None:
        if request.params.get("org") != self.org:
            return SandboxResponse(404, {"detail": "The requested resource does not exist"})
        return None

    def _issue(self, request: SandboxRequest) -> dict[str, Any] | None:
        """The issue the path names, if the path's organisation is ours (else: not found, as Sentry answers)."""
        if request.params.get("org") != self.org:
            return None
        return self.issues.get(request.params["issue_id"])

    def _page(self, request: SandboxRequest, items: list[Any], limit: int) -> SandboxResponse:
        cursor = request.arg("cursor", "0:0:0") or "0:0:0"
        match = re.fullmatch(r"(\d+):(\d+):([01])", cursor)
        if not match:
            return SandboxResponse(400, {"detail": "Invalid cursor parameter."})
        offset = int(match.group(2))
        page = items[offset : offset + limit]
        base = f"{self.url}{request.path}?"
        has_prev = offset > 0
        has_next = offset + limit < len(items)
        prev_cursor = f"0:{max(offset - limit, 0)}:1"
        next_cursor = f"0:{offset + limit}:0"
        link = (
            f'<{base}&cursor={prev_cursor}>; rel="previous"; results="{str(has_prev).lower()}"; cursor="{prev_cursor}", '
            f'<{base}&cursor={next_cursor}>; rel="next"; results="{str(has_next).lower()}"; cursor="{next_cursor}"'
        )
        return SandboxResponse(200, page, {"Link": link})

    # --- routes ---
    @route("GET", r"/api/0/organizations/(?P<org>[^/]+)/issues/")
    def list_issues(self, request: SandboxRequest) -> SandboxResponse:
        missing = self._org_or_404(request)
        if missing:
            return missing
        try:
            limit = int(request.arg("limit", "25"))
        except ValueError:
            return SandboxResponse(400, {"detail": "Invalid limit"})
        if not 1 <= limit <= 100:
            return SandboxResponse(400, {"detail": "limit must be between 1 and 100"})
        query = request.arg("query", "is:unresolved")
        issues = [issue for issue in self.issues.values() if self._matches(issue, query or "")]
        sort = request.arg("sort", "date")
        key = {"date": "lastSeen", "new": "firstSeen", "freq": "count", "user": "userCount"}.get(sort)
        if key is None:
            return SandboxResponse(400, {"detail": f"Invalid sort: {sort}"})
        issues.sort(key=lambda i: int(i[key]) if key in {"count", "userCount"} else i[key], reverse=True)
        return self._page(request, issues, limit)

    @staticmethod
    def _matches(issue: dict[str, Any], query: str) -> bool:
        for token in query.split():
            if ":" in token:
                name, _, value = token.partition(":")
                if (
                    name == "is"
                    and value in {"unresolved", "resolved", "ignored"}
                    and issue["status"] != value
                ):
                    return False
                if name == "level" and issue["level"] != value:
                    return False
            elif token.lower() not in (issue["title"] + " " + issue["culprit"]).lower():
                return False
        return True

    @route("GET", r"/api/0/organizations/(?P<org>[^/]+)/issues/(?P<issue_id>\d+)/")
    def get_issue(self, request: SandboxRequest) -> SandboxResponse:
        issue = self._issue(request)
        if issue is None:
            return self.not_found(request)
        return SandboxResponse(
            200,
            {
                **issue,
                "tags": [{"key": "environment", "totalValues": int(issue["count"])}],
                "annotations": [],
            },
        )

    @route("PUT", r"/api/0/organizations/(?P<org>[^/]+)/issues/(?P<issue_id>\d+)/")
    def update_issue(self, request: SandboxRequest) -> SandboxResponse:
        issue = self._issue(request)
        if issue is None:
            return self.not_found(request)
        status = (request.json() or {}).get("status")
        if status not in {"resolved", "unresolved", "ignored"}:
            return SandboxResponse(400, {"status": [f'"{status}" is not a valid choice.']})
        issue["status"] = status
        return SandboxResponse(200, issue)

    @route("GET", r"/api/0/organizations/(?P<org>[^/]+)/issues/(?P<issue_id>\d+)/events/(?P<event_id>[^/]+)/")
    def get_event(self, request: SandboxRequest) -> SandboxResponse:
        missing = self._org_or_404(request)
        if missing:
            return missing
        events = self.events.get(request.params["issue_id"])
        if not events:
            return self.not_found(request)
        wanted = request.params["event_id"]
        ordered = sorted(events, key=lambda e: e["dateCreated"])
        if wanted in {"latest", "recommended"}:
            return SandboxResponse(200, ordered[-1])
        if wanted == "oldest":
            return SandboxResponse(200, ordered[0])
        for event in events:
            if event["id"] == wanted:
                return SandboxResponse(200, event)
        return self.not_found(request)

    @route("GET", r"/api/0/organizations/(?P<org>[^/]+)/events/")
    def discover_events(self, request: SandboxRequest) -> SandboxResponse:
        missing = self._org_or_404(request)
        if missing:
            return missing
        fields = request.query.get("field", [])
        if not fields:
            return SandboxResponse(400, {"detail": "No columns selected"})
        known = {"transaction", "p95()", "p50()", "count()", "failure_rate()"}
        unknown = [f for f in fields if f not in known]
        if unknown:
            return SandboxResponse(400, {"detail": f"Unknown field: {unknown[0]}"})
        rows = [{f: row[f] for f in fields} for row in self.transactions]
        sort = request.arg("sort", "-count()") or "-count()"
        column = sort.lstrip("-")
        if column in fields:
            rows.sort(key=lambda r: r[column], reverse=sort.startswith("-"))
        meta = {
            "fields": {
                f: (
                    "string"
                    if f == "transaction"
                    else "duration"
                    if f.startswith("p")
                    else "integer"
                    if f == "count()"
                    else "percentage"
                )
                for f in fields
            }
        }
        return SandboxResponse(200, {"data": rows, "meta": meta})


SANDBOX_CLASS = SentrySandbox
