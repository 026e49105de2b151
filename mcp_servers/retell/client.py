"""The Retell API client (reference/upstream-apis.md §2), on the shared UpstreamClient base.

Retell moved its list endpoints to cursor envelopes in May 2026 (`POST /v3/list-calls`,
`POST /v2/list-agents`, `GET /v2/list-phone-numbers`); the legacy routes answer bare arrays
(`POST /v2/list-calls`, `GET /list-agents`, `GET /list-phone-numbers`). The client speaks the
current generation and falls back to the legacy one when a deployment answers 404 for the
current route; it remembers that per base URL so the probe costs one request per process.
Both shapes are normalised into one `Page`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal
from urllib.parse import quote

from mcp_core.contracts import ErrorCode, MCPError, OperationContext
from mcp_core.http import UpstreamClient

Generation = Literal["current", "legacy"]

# The largest `limit` Retell's list endpoints accept (the sandbox refuses more, as Retell does).
MAX_PAGE_SIZE = 1000
# Page size the client asks for when it walks every page of a listing.
WALK_PAGE_SIZE = 200
# A bound on walking, so that a runaway listing cannot hold a call forever.
MAX_PAGES = 50

_legacy_bases: set[tuple[str, str]] = set()
_legacy_lock = threading.Lock()


@dataclass(slots=True)
class Page:
    """One page of a listing in either generation."""

    items: list[dict[str, Any]]
    has_more: bool
    pagination_key: str | None
    generation: Generation
    total: int | None = None


@dataclass(slots=True)
class CallFilter:
    """The filters this project uses, translated into either generation's form."""

    agent_ids: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    directions: list[str] = field(default_factory=list)
    start_after_ms: int | None = None
    start_before_ms: int | None = None

    def legacy(self) -> dict[str, Any]:
        criteria: dict[str, Any] = {}
        if self.agent_ids:
            criteria["agent_id"] = list(self.agent_ids)
        if self.statuses:
            criteria["call_status"] = list(self.statuses)
        if self.directions:
            criteria["direction"] = list(self.directions)
        bounds = {}
        if self.start_after_ms is not None:
            bounds["lower_threshold"] = self.start_after_ms
        if self.start_before_ms is not None:
            bounds["upper_threshold"] = self.start_before_ms
        if bounds:
            criteria["start_timestamp"] = bounds
        return criteria

    def current(self) -> dict[str, Any]:
        criteria: dict[str, Any] = {}
        if self.agent_ids:
            criteria["agent"] = [{"agent_id": agent_id} for agent_id in self.agent_ids]
        if self.statuses:
            criteria["call_status"] = {"op": "in", "type": "enum", "value": list(self.statuses)}
        if self.directions:
            criteria["direction"] = {"op": "in", "type": "enum", "value": list(self.directions)}
        low, high = self.start_after_ms, self.start_before_ms
        if low is not None and high is not None:
            criteria["start_timestamp"] = {"op": "bt", "type": "range", "value": [low, high]}
        elif low is not None:
            criteria["start_timestamp"] = {"op": "ge", "type": "number", "value": low}
        elif high is not None:
            criteria["start_timestamp"] = {"op": "le", "type": "number", "value": high}
        return criteria


class RetellClient(UpstreamClient):
    """Every Retell request of this project. Methods raise MCPError (from the base) on failure."""

    service: ClassVar[str] = "retell"

    def __init__(self, *, api_key: str, base_url: str) -> None:
        if not api_key:
            raise MCPError(ErrorCode.NOT_CONFIGURED, "retell: no API key configured")
        super().__init__(base_url=base_url, headers={"Authorization": f"Bearer {api_key}"})

    # --- generations ---
    @property
    def generation(self) -> Generation:
        return "legacy" if ("retell", self.base_url) in _legacy_bases else "current"

    def _use_legacy(self) -> None:
        with _legacy_lock:
            _legacy_bases.add(("retell", self.base_url))

    def _current_or_legacy(self, current: Any, legacy: Any) -> Any:
        """Run `current()`; on a 404 for the route itself, remember and run `legacy()`."""
        if self.generation == "legacy":
            return legacy()
        try:
            return current()
        except MCPError as exc:
            if exc.code is not ErrorCode.NOT_FOUND:
                raise
        self._use_legacy()
        return legacy()

    # --- agents ---
    def list_agents_page(
        self, ctx: OperationContext | None, *, limit: int = 50, pagination_key: str | None = None
    ) -> Page:
        def current() -> Page:
            query: dict[str, Any] = {"limit": limit}
            if pagination_key:
                query["pagination_key"] = pagination_key
            body = self.request(
                "POST", "/v2/list-agents", ctx=ctx, params=query, json={}, idempotent=True
            ).json()
            return _envelope(body, "current")

        def legacy() -> Page:
            # The legacy route returns every agent (one row per version) at once.
            body = self.request("GET", "/list-agents", ctx=ctx).json()
            return Page(
                items=_latest_versions(_array(body)), has_more=False, pagination_key=None, generation="legacy"
            )

        return self._current_or_legacy(current, legacy)

    def list_agents(self, ctx: OperationContext | None) -> tuple[list[dict[str, Any]], Generation]:
        return self._walk(lambda key: self.list_agents_page(ctx, limit=WALK_PAGE_SIZE, pagination_key=key))

    def get_agent(self, ctx: OperationContext | None, agent_id: str) -> dict[str, Any]:
        return self.request("GET", f"/get-agent/{quote(agent_id, safe='')}", ctx=ctx).json()

    def get_llm(self, ctx: OperationContext | None, llm_id: str) -> dict[str, Any]:
        return self.request("GET", f"/get-retell-llm/{quote(llm_id, safe='')}", ctx=ctx).json()

    def update_llm_prompt(self, ctx: OperationContext | None, llm_id: str, prompt: str) -> dict[str, Any]:
        # Setting a value is idempotent, so a lost answer may be retried safely.
        return self.request(
            "PATCH",
            f"/update-retell-llm/{quote(llm_id, safe='')}",
            ctx=ctx,
            json={"general_prompt": prompt},
            idempotent=True,
        ).json()

    # --- phone numbers ---
    def list_phone_numbers(self, ctx: OperationContext | None) -> tuple[list[dict[str, Any]], Generation]:
        def page(key: str | None) -> Page:
            def current() -> Page:
                query: dict[str, Any] = {"limit": WALK_PAGE_SIZE}
                if key:
                    query["pagination_key"] = key
                body = self.request("GET", "/v2/list-phone-numbers", ctx=ctx, params=query).json()
                return _envelope(body, "current")

            def legacy() -> Page:
                body = self.request("GET", "/list-phone-numbers", ctx=ctx).json()
                return Page(items=_array(body), has_more=False, pagination_key=None, generation="legacy")

            return self._current_or_legacy(current, legacy)

        return self._walk(page)

    # --- calls ---
    def list_calls(
        self,
        ctx: OperationContext | None,
        *,
        filters: CallFilter | None = None,
        limit: int = 50,
        pagination_key: str | None = None,
        sort_order: str = "descending",
    ) -> Page:
        filters = filters or CallFilter()

        def current() -> Page:
            body: dict[str, Any] = {
                "filter_criteria": filters.current(),
                "limit": limit,
                "sort_order": sort_order,
            }
            if pagination_key:
                body["pagination_key"] = pagination_key
            answer = self.request("POST", "/v3/list-calls", ctx=ctx, json=body, idempotent=True).json()
            return _envelope(answer, "current")

        def legacy() -> Page:
            body: dict[str, Any] = {
                "filter_criteria": filters.legacy(),
                "limit": limit,
                "sort_order": sort_order,
            }
            if pagination_key:
                body["pagination_key"] = pagination_key
            items = _array(self.request("POST", "/v2/list-calls", ctx=ctx, json=body, idempotent=True).json())
            # The legacy key is the last call_id (exclusive); a short page is the last one.
            full = len(items) >= limit
            return Page(
                items=items,
                has_more=full,
                pagination_key=items[-1]["call_id"] if full and items else None,
                generation="legacy",
            )

        return self._current_or_legacy(current, legacy)

    def get_call(self, ctx: OperationContext | None, call_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v2/get-call/{quote(call_id, safe='')}", ctx=ctx).json()

    def create_phone_call(self, ctx: OperationContext | None, body: dict[str, Any]) -> dict[str, Any]:
        # Not idempotent: Retell takes no idempotency key, and a retry could dial twice.
        return self.request("POST", "/v2/create-phone-call", ctx=ctx, json=body, idempotent=False).json()

    # --- helpers ---
    def _walk(self, fetch_page: Any) -> tuple[list[dict[str, Any]], Generation]:
        items: list[dict[str, Any]] = []
        key: str | None = None
        generation: Generation = "current"
        for _ in range(MAX_PAGES):
            page = fetch_page(key)
            items.extend(page.items)
            generation = page.generation
            if not page.has_more or not page.pagination_key:
                break
            key = page.pagination_key
        return items, generation


def _array(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, list):
        raise MCPError(ErrorCode.UPSTREAM_ERROR, "retell: expected a JSON array from a legacy list route")
    return body


def _envelope(body: Any, generation: Generation) -> Page:
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise MCPError(ErrorCode.UPSTREAM_ERROR, "retell: expected {items, has_more, pagination_key}")
    return Page(
        items=body["items"],
        has_more=bool(body.get("has_more")),
        pagination_key=body.get("pagination_key"),
        generation=generation,
        total=body.get("total"),
    )


def _latest_versions(agents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The legacy list returns one entry per agent version; keep the newest of each."""
    newest: dict[str, dict[str, Any]] = {}
    for agent in agents:
        seen = newest.get(agent.get("agent_id", ""))
        if seen is None or (agent.get("version") or 0) >= (seen.get("version") or 0):
            newest[agent.get("agent_id", "")] = agent
    return list(newest.values())


def reset_generation_cache_for_tests() -> None:
    with _legacy_lock:
        _legacy_bases.clear()
