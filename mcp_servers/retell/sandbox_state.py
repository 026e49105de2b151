"""The Retell sandbox's state: one workspace of agents, Retell LLMs (where a retell-llm
agent's prompt lives), phone numbers and calls, with the helpers tests and the demo use
to fill it (the HTTP routes use them too)."""

from __future__ import annotations

import copy
import secrets
import threading
import time
from typing import Any

from mcp_core.sandbox import SandboxServer

DEMO_API_KEY = "key_sandbox_retell_demo"  # the SANDBOX=1 default of settings.RETELL_API_KEY
WEBHOOK_EVENTS = ("call_started", "call_ended", "call_analyzed")


def now_ms() -> int:
    return int(time.time() * 1000)


def new_id(prefix: str, n: int = 13) -> str:
    return f"{prefix}_{secrets.token_hex(n)}"


class RetellState(SandboxServer):
    """The in-memory workspace; RetellSandbox (sandbox.py) builds it."""

    agents: dict[str, dict[str, Any]]
    llms: dict[str, dict[str, Any]]
    phone_numbers: dict[str, dict[str, Any]]
    calls: dict[str, dict[str, Any]]
    webhook_log: list[dict[str, Any]]
    legacy_only: bool
    _state_lock: threading.RLock

    def add_agent(
        self,
        agent_id: str | None = None,
        *,
        agent_name: str = "Receptionist",
        prompt: str = "",
        channel: str = "voice",
        webhook_url: str | None = None,
        response_engine: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        with self._state_lock:
            agent_id = agent_id or new_id("agent")
            if response_engine is None:
                llm = self.add_llm(general_prompt=prompt)
                response_engine = {"type": "retell-llm", "llm_id": llm["llm_id"], "version": 0}
            agent = {
                "agent_id": agent_id,
                "version": 0,
                "is_published": False,
                "agent_name": agent_name,
                "channel": channel,
                "voice_id": "11labs-Adrian",
                "language": "de-DE",
                "response_engine": response_engine,
                "webhook_url": webhook_url,
                "webhook_events": list(WEBHOOK_EVENTS),
                "webhook_timeout_ms": 10000,
                "tags": {},
                "last_modification_timestamp": now_ms(),
            }
            self.agents[agent_id] = agent
            return copy.deepcopy(agent)

    def add_llm(self, *, general_prompt: str = "", begin_message: str | None = None) -> dict[str, Any]:
        with self._state_lock:
            llm = {
                "llm_id": new_id("llm"),
                "version": 0,
                "is_published": False,
                "model": "gpt-4.1",
                "general_prompt": general_prompt,
                "begin_message": begin_message,
                "general_tools": [],
                "last_modification_timestamp": now_ms(),
            }
            self.llms[llm["llm_id"]] = llm
            return copy.deepcopy(llm)

    def add_phone_number(
        self,
        number: str,
        *,
        inbound_agent_id: str | None = None,
        outbound_agent_id: str | None = None,
        nickname: str | None = None,
    ) -> dict[str, Any]:
        with self._state_lock:
            entry = {
                "phone_number": number,
                "phone_number_pretty": number,
                "phone_number_type": "retell-twilio",
                "nickname": nickname,
                "area_code": int(number[3:6]) if number[3:6].isdigit() else None,
                "inbound_agents": [{"agent_id": inbound_agent_id, "agent_version": 0, "weight": 1}]
                if inbound_agent_id
                else [],
                "outbound_agents": [
                    {"agent_id": outbound_agent_id or inbound_agent_id, "agent_version": 0, "weight": 1}
                ]
                if (outbound_agent_id or inbound_agent_id)
                else [],
                "inbound_webhook_url": None,
                "last_modification_timestamp": now_ms(),
            }
            self.phone_numbers[number] = entry
            return copy.deepcopy(entry)

    def add_call(
        self,
        *,
        agent_id: str,
        from_number: str,
        to_number: str,
        direction: str = "inbound",
        call_status: str = "ended",
        start_timestamp: int | None = None,
        duration_ms: int = 90_000,
        combined_cost: float = 12.5,
        call_id: str | None = None,
        transcript: str = "Agent: Guten Tag!\nUser: Ich möchte einen Termin.",
        call_summary: str = "The caller booked an appointment.",
        call_successful: bool = True,
        user_sentiment: str = "Positive",
        disconnection_reason: str = "user_hangup",
    ) -> dict[str, Any]:
        """Record a call. Ended calls carry transcript, cost (in cents) and analysis."""
        with self._state_lock:
            start = now_ms() - duration_ms - 60_000 if start_timestamp is None else start_timestamp
            agent = self.agents.get(agent_id, {})
            call: dict[str, Any] = {
                "call_id": call_id or new_id("call", 14),
                "call_type": "phone_call",
                "agent_id": agent_id,
                "agent_version": agent.get("version", 0),
                "agent_name": agent.get("agent_name"),
                "call_status": call_status,
                "direction": direction,
                "from_number": from_number,
                "to_number": to_number,
                "metadata": {},
                "retell_llm_dynamic_variables": {},
                "start_timestamp": start,
            }
            if call_status in ("ended", "error", "not_connected"):
                call |= {
                    "end_timestamp": start + duration_ms,
                    "duration_ms": duration_ms,
                    "transcript": transcript,
                    "transcript_object": [
                        {
                            "role": "agent" if line.startswith("Agent") else "user",
                            "content": line,
                            "words": [],
                        }
                        for line in transcript.splitlines()
                    ],
                    "recording_url": f"https://dxc03zgurdly9.cloudfront.net/{call_id or 'rec'}/recording.wav",
                    "public_log_url": None,
                    "disconnection_reason": disconnection_reason,
                    "call_cost": {
                        "combined_cost": combined_cost,
                        "product_costs": [
                            {"product": "retell_platform", "cost": combined_cost, "unit_price": 0.12}
                        ],
                        "total_duration_seconds": duration_ms // 1000,
                        "total_duration_unit_price": 0.12,
                    },
                    "call_analysis": {
                        "call_summary": call_summary,
                        "call_successful": call_successful,
                        "user_sentiment": user_sentiment,
                        "in_voicemail": False,
                        "custom_analysis_data": {},
                    },
                }
            self.calls[call["call_id"]] = call
            return copy.deepcopy(call)

    def set_call_status(self, call_id: str, status: str, **fields: Any) -> dict[str, Any]:
        with self._state_lock:
            call = self.calls[call_id]
            call["call_status"] = status
            call.update(fields)
            return copy.deepcopy(call)

    def reset(self) -> None:
        """Forget every record, fault and logged request (tests share one sandbox per module)."""
        with self._state_lock, self.lock:
            self.agents.clear()
            self.llms.clear()
            self.phone_numbers.clear()
            self.calls.clear()
            self.faults.clear()
            self.request_log.clear()
            self.webhook_log.clear()
            self.legacy_only = False
