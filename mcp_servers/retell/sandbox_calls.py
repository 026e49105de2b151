"""The Retell sandbox's calls: list in both generations (legacy list filters, current typed
filters), get, and create-phone-call with the plan's concurrency limit."""

from __future__ import annotations

import copy
import re
from typing import Any

from mcp_core.sandbox import SandboxRequest, SandboxResponse, route

from .client import MAX_PAGE_SIZE
from .sandbox_api import (
    BadRequest,
    RetellApi,
    answers_bad_requests,
    error_response,
    int_arg,
    list_args,
    rate_limit_headers,
    sort_order,
)
from .schemas import E164 as E164_PATTERN

E164 = re.compile(E164_PATTERN)  # the same rule the operation's params check


# --- legacy (v2) and current (v3) call filters ---
_LEGACY_LIST_FILTERS = {
    "agent_id": "agent_id",
    "call_status": "call_status",
    "call_type": "call_type",
    "direction": "direction",
    "from_number": "from_number",
    "to_number": "to_number",
    "disconnection_reason": "disconnection_reason",
    "user_sentiment": "call_analysis.user_sentiment",
    "call_successful": "call_analysis.call_successful",
    "in_voicemail": "call_analysis.in_voicemail",
}
_RANGE_FILTERS = {"start_timestamp": "start_timestamp", "duration_ms": "duration_ms"}
_CURRENT_FILTERS = {
    **_LEGACY_LIST_FILTERS,
    **_RANGE_FILTERS,
    "combined_cost": "call_cost.combined_cost",
    "end_timestamp": "end_timestamp",
}


def _criteria(body: dict[str, Any]) -> dict[str, Any]:
    criteria = body.get("filter_criteria") or {}
    if not isinstance(criteria, dict):
        raise BadRequest("filter_criteria must be an object")
    return criteria


def _field(call: dict[str, Any], dotted: str) -> Any:
    value: Any = call
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _legacy_match(call: dict[str, Any], criteria: dict[str, Any]) -> bool:
    for key, wanted in criteria.items():
        if key in _LEGACY_LIST_FILTERS:
            if not isinstance(wanted, list):
                raise BadRequest(f"filter_criteria.{key} must be an array")
            if _field(call, _LEGACY_LIST_FILTERS[key]) not in wanted:
                return False
        elif key in _RANGE_FILTERS:
            if not isinstance(wanted, dict) or set(wanted) - {"lower_threshold", "upper_threshold"}:
                raise BadRequest(f"filter_criteria.{key} must be {{lower_threshold, upper_threshold}}")
            value = _field(call, _RANGE_FILTERS[key])
            if value is None:
                return False
            if "lower_threshold" in wanted and value < wanted["lower_threshold"]:
                return False
            if "upper_threshold" in wanted and value > wanted["upper_threshold"]:
                return False
        elif key in ("metadata", "dynamic_variables"):
            source = call.get("metadata" if key == "metadata" else "retell_llm_dynamic_variables") or {}
            if any(source.get(k) not in v for k, v in (wanted or {}).items()):
                return False
        else:
            raise BadRequest(f"filter_criteria.{key} is not a known filter")
    return True


def _typed_match(value: Any, spec: Any, key: str) -> bool:
    if not isinstance(spec, dict) or "op" not in spec or "value" not in spec:
        raise BadRequest(f"filter_criteria.{key} must be {{op, type, value}}")
    op, wanted = spec["op"], spec["value"]
    if op == "in":
        return value in wanted
    if op == "eq":
        return value == wanted
    if op == "ne":
        return value != wanted
    if value is None:
        return False
    if op == "bt":
        if not (isinstance(wanted, list) and len(wanted) == 2):
            raise BadRequest(f"filter_criteria.{key}.value must be [low, high] for op bt")
        return wanted[0] <= value <= wanted[1]
    comparisons = {"ge": value.__ge__, "gt": value.__gt__, "le": value.__le__, "lt": value.__lt__}
    if op not in comparisons:
        raise BadRequest(f"filter_criteria.{key}.op {op!r} is not supported")
    return bool(comparisons[op](wanted))


def _current_match(call: dict[str, Any], criteria: dict[str, Any]) -> bool:
    for key, spec in criteria.items():
        if key == "agent":
            if not isinstance(spec, list):
                raise BadRequest("filter_criteria.agent must be an array of {agent_id, version?}")
            if not any(
                call.get("agent_id") == item.get("agent_id")
                and (not item.get("version") or call.get("agent_version") in item["version"])
                for item in spec
            ):
                return False
        elif key in _CURRENT_FILTERS:
            if not _typed_match(_field(call, _CURRENT_FILTERS[key]), spec, key):
                return False
        else:
            raise BadRequest(f"filter_criteria.{key} is not a known filter")
    return True


class CallRoutes(RetellApi):
    """/v2/list-calls, /v3/list-calls, /v2/get-call and /v2/create-phone-call (mixed into RetellSandbox)."""

    concurrency_limit: int

    def _sorted_calls(self, order: str) -> list[dict[str, Any]]:
        return sorted(
            (copy.deepcopy(c) for c in self.calls.values()),
            key=lambda c: (c.get("start_timestamp") or 0, c["call_id"]),
            reverse=order == "descending",
        )

    @route("POST", r"/v2/list-calls")
    @answers_bad_requests
    def list_calls_legacy(self, request: SandboxRequest) -> SandboxResponse:
        """Legacy generation: a bare JSON array; pagination_key is the last call_id (exclusive)."""
        body = self._json_body(request, required=False)
        limit, order = list_args(body.get("limit"), body.get("sort_order", "descending"))
        criteria = _criteria(body)
        with self._state_lock:
            calls = [c for c in self._sorted_calls(order) if _legacy_match(c, criteria)]
        after = body.get("pagination_key")
        if after:
            ids = [c["call_id"] for c in calls]
            if after not in ids:
                return error_response(400, "pagination_key does not name a call of this listing")
            calls = calls[ids.index(after) + 1 :]
        return SandboxResponse(200, calls[:limit])

    @route("POST", r"/v3/list-calls")
    @answers_bad_requests
    def list_calls_v3(self, request: SandboxRequest) -> SandboxResponse:
        """Current generation: `{items, has_more, pagination_key, total?}` with typed filters."""
        if self.legacy_only:
            return self.not_found(request)
        body = self._json_body(request, required=False)
        unknown = sorted(
            set(body) - {"filter_criteria", "include_total", "limit", "pagination_key", "skip", "sort_order"}
        )
        if unknown:
            raise BadRequest(f"{unknown[0]} is not a known parameter")
        limit = int_arg(body.get("limit"), "limit", default=50, low=1, high=MAX_PAGE_SIZE)
        skip = int_arg(body.get("skip"), "skip", default=0, low=0, high=1_000_000)
        order = sort_order(body.get("sort_order", "descending"))
        criteria = _criteria(body)
        with self._state_lock:
            calls = [c for c in self._sorted_calls(order) if _current_match(c, criteria)]
        page = self._page(calls, "call_id", limit, body.get("pagination_key"), skip=skip)
        if body.get("include_total"):
            page["total"] = len(calls)
        return SandboxResponse(200, page)

    @route("GET", r"/v2/get-call/(?P<call_id>[^/]+)")
    @answers_bad_requests
    def get_call(self, request: SandboxRequest) -> SandboxResponse:
        with self._state_lock:
            call = self.calls.get(request.params["call_id"])
            if call is None:
                return error_response(404, f"Call {request.params['call_id']} not found")
            return SandboxResponse(200, copy.deepcopy(call))

    @route("POST", r"/v2/create-phone-call")
    @answers_bad_requests
    def create_phone_call(self, request: SandboxRequest) -> SandboxResponse:
        body = self._json_body(request)
        known = {
            "from_number",
            "to_number",
            "override_agent_id",
            "override_agent_version",
            "agent_override",
            "metadata",
            "retell_llm_dynamic_variables",
            "custom_sip_headers",
            "ignore_e164_validation",
        }
        unknown = sorted(set(body) - known)
        if unknown:
            return error_response(400, f"{unknown[0]} is not a known parameter")
        for name in ("from_number", "to_number"):
            value = body.get(name)
            if not isinstance(value, str) or not value:
                return error_response(400, f"{name} is required")
            if not body.get("ignore_e164_validation") and not E164.match(value):
                return error_response(400, f"{name} must be an E.164 number")
        variables = body.get("retell_llm_dynamic_variables") or {}
        if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
            return error_response(400, "retell_llm_dynamic_variables must map names to strings")
        with self._state_lock:
            number = self.phone_numbers.get(body["from_number"])
            if number is None:
                return error_response(
                    404, f"from_number {body['from_number']} is not a number of this workspace"
                )
            agent_id = body.get("override_agent_id") or next(
                (a["agent_id"] for a in number["outbound_agents"]), None
            )
            if agent_id is None:
                return error_response(400, "from_number has no outbound agent; pass override_agent_id")
            if agent_id not in self.agents:
                return error_response(404, f"Agent {agent_id} not found")
            active = sum(1 for c in self.calls.values() if c["call_status"] in ("registered", "ongoing"))
            if active >= self.concurrency_limit:
                return error_response(
                    429,
                    f"Concurrency limit reached: {active} calls in progress (limit {self.concurrency_limit}).",
                    rate_limit_headers(5.0),
                )
            call = self.add_call(
                agent_id=agent_id,
                from_number=body["from_number"],
                to_number=body["to_number"],
                direction="outbound",
                call_status="registered",
                start_timestamp=None,
            )
            stored = self.calls[call["call_id"]]
            stored.pop("start_timestamp", None)  # a registered call has not started yet
            stored["metadata"] = body.get("metadata") or {}
            stored["retell_llm_dynamic_variables"] = variables
            return SandboxResponse(201, copy.deepcopy(stored))
