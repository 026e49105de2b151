"""The Retell sandbox's agents, their Retell LLMs and the phone numbers that ring them, in
both list generations (legacy arrays and cursor envelopes)."""

from __future__ import annotations

import copy
from urllib.parse import unquote

from mcp_core.sandbox import SandboxRequest, SandboxResponse, route

from .sandbox_api import RetellApi, answers_bad_requests, error_response, list_args
from .sandbox_state import now_ms


class AgentRoutes(RetellApi):
    """Agents, Retell LLMs and phone numbers (mixed into RetellSandbox)."""

    # --- agents ---
    @route("GET", r"/list-agents")
    @answers_bad_requests
    def list_agents_legacy(self, request: SandboxRequest) -> SandboxResponse:
        with self._state_lock:
            return SandboxResponse(200, [copy.deepcopy(a) for a in self.agents.values()])

    @route("POST", r"/v2/list-agents")
    @answers_bad_requests
    def list_agents_v2(self, request: SandboxRequest) -> SandboxResponse:
        if self.legacy_only:
            return self.not_found(request)
        limit, order = list_args(request.arg("limit"), request.arg("sort_order", "descending"))
        criteria = self._json_body(request, required=False).get("filter_criteria") or {}
        channel = criteria.get("channel")
        query = criteria.get("query")
        with self._state_lock:
            agents = sorted(
                self.agents.values(),
                key=lambda a: (a["last_modification_timestamp"], a["agent_id"]),
                reverse=order == "descending",
            )
            if channel:
                agents = [a for a in agents if a["channel"] == channel.get("value")]
            if query:
                agents = [a for a in agents if query.lower() in (a["agent_name"] or "").lower()]
            items = [
                {
                    "agent_id": a["agent_id"],
                    "agent_name": a["agent_name"],
                    "channel": a["channel"],
                    "tags": a["tags"],
                    "user_modified_timestamp": a["last_modification_timestamp"],
                }
                for a in agents
            ]
        return SandboxResponse(200, self._page(items, "agent_id", limit, request.arg("pagination_key")))

    @route("GET", r"/get-agent/(?P<agent_id>[^/]+)")
    @answers_bad_requests
    def get_agent(self, request: SandboxRequest) -> SandboxResponse:
        with self._state_lock:
            agent = self.agents.get(request.params["agent_id"])
            if agent is None:
                return error_response(404, f"Agent {request.params['agent_id']} not found")
            version = request.arg("version")
            if version is not None and version != str(agent["version"]):
                return error_response(404, f"Agent {agent['agent_id']} has no version {version}")
            return SandboxResponse(200, copy.deepcopy(agent))

    @route("PATCH", r"/update-agent/(?P<agent_id>[^/]+)")
    @answers_bad_requests
    def update_agent(self, request: SandboxRequest) -> SandboxResponse:
        body = self._json_body(request)
        allowed = {
            "agent_name",
            "voice_id",
            "language",
            "webhook_url",
            "webhook_events",
            "webhook_timeout_ms",
        }
        unknown = sorted(set(body) - allowed)
        if unknown:
            return error_response(400, f"{unknown[0]} is not an updatable agent field")
        with self._state_lock:
            agent = self.agents.get(request.params["agent_id"])
            if agent is None:
                return error_response(404, f"Agent {request.params['agent_id']} not found")
            agent.update(body)
            agent["last_modification_timestamp"] = now_ms()
            return SandboxResponse(200, copy.deepcopy(agent))

    # --- Retell LLM (where a retell-llm agent's prompt lives) ---
    @route("GET", r"/get-retell-llm/(?P<llm_id>[^/]+)")
    @answers_bad_requests
    def get_llm(self, request: SandboxRequest) -> SandboxResponse:
        with self._state_lock:
            llm = self.llms.get(request.params["llm_id"])
            if llm is None:
                return error_response(404, f"Retell LLM {request.params['llm_id']} not found")
            return SandboxResponse(200, copy.deepcopy(llm))

    @route("PATCH", r"/update-retell-llm/(?P<llm_id>[^/]+)")
    @answers_bad_requests
    def update_llm(self, request: SandboxRequest) -> SandboxResponse:
        body = self._json_body(request)
        allowed = {"general_prompt", "begin_message", "model", "general_tools"}
        unknown = sorted(set(body) - allowed)
        if unknown:
            return error_response(400, f"{unknown[0]} is not an updatable Retell LLM field")
        if "general_prompt" in body and not isinstance(body["general_prompt"], str):
            return error_response(400, "general_prompt must be a string")
        with self._state_lock:
            llm = self.llms.get(request.params["llm_id"])
            if llm is None:
                return error_response(404, f"Retell LLM {request.params['llm_id']} not found")
            llm.update(body)
            llm["last_modification_timestamp"] = now_ms()
            return SandboxResponse(200, copy.deepcopy(llm))

    # --- phone numbers ---
    @route("GET", r"/list-phone-numbers")
    @answers_bad_requests
    def list_phone_numbers_legacy(self, request: SandboxRequest) -> SandboxResponse:
        with self._state_lock:
            return SandboxResponse(200, [copy.deepcopy(p) for p in self.phone_numbers.values()])

    @route("GET", r"/v2/list-phone-numbers")
    @answers_bad_requests
    def list_phone_numbers_v2(self, request: SandboxRequest) -> SandboxResponse:
        if self.legacy_only:
            return self.not_found(request)
        limit, order = list_args(request.arg("limit"), request.arg("sort_order", "descending"))
        with self._state_lock:
            items = sorted(
                (copy.deepcopy(p) for p in self.phone_numbers.values()),
                key=lambda p: (p["last_modification_timestamp"], p["phone_number"]),
                reverse=order == "descending",
            )
        return SandboxResponse(200, self._page(items, "phone_number", limit, request.arg("pagination_key")))

    @route("GET", r"/get-phone-number/(?P<number>[^/]+)")
    @answers_bad_requests
    def get_phone_number(self, request: SandboxRequest) -> SandboxResponse:
        number = unquote(request.params["number"])
        with self._state_lock:
            entry = self.phone_numbers.get(number)
            if entry is None:
                return error_response(404, f"Phone number {number} not found")
            return SandboxResponse(200, copy.deepcopy(entry))
