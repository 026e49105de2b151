"""A stateful fake of the Retell AI API (reference/upstream-apis.md §2) on 127.0.0.1.

It speaks both generations of the list endpoints (the legacy arrays and the cursor
envelopes introduced in May 2026), Bearer auth with Retell's error body
`{"status": <code>, "message": ...}`, create-phone-call with a concurrency limit (Retell's
documented lever, answered with 429 and Retry-After), the Retell LLM that holds an agent's
prompt, and correctly signed webhooks (`x-retell-signature: v=<ms>,d=<hex>`).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from typing import Any, ClassVar
from urllib.parse import unquote

import requests

from mcp_core.sandbox import SandboxRequest, SandboxResponse, SandboxServer, route

DEMO_API_KEY = "key_sandbox_retell_demo"  # the SANDBOX=1 default of settings.RETELL_API_KEY
SIGNATURE_HEADER = "x-retell-signature"
WEBHOOK_EVENTS = ("call_started", "call_ended", "call_analyzed")
E164 = re.compile(r"^\+[1-9]\d{6,14}$")


# --- webhook signing (what Retell's SDK verifier accepts) ---
def webhook_body(payload: dict[str, Any]) -> bytes:
    """Compact JSON with ensure_ascii=False: both the raw-body and the re-serialising
    verifiers of Retell's official samples accept a signature over these bytes."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def sign_webhook(body: bytes, api_key: str, timestamp_ms: int | None = None) -> dict[str, str]:
    """Headers of a signed delivery: `x-retell-signature: v=<ms>,d=<hex>` where the digest
    is HMAC-SHA256(key=api_key, msg=body + str(ms)) — the body first, no separator."""
    ts = int(time.time() * 1000) if timestamp_ms is None else int(timestamp_ms)
    digest = hmac.new(api_key.encode(), body + str(ts).encode(), hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", SIGNATURE_HEADER: f"v={ts},d={digest}"}


_STARTED_DROP = (
    "end_timestamp",
    "duration_ms",
    "transcript",
    "transcript_object",
    "transcript_with_tool_calls",
    "recording_url",
    "recording_multi_channel_url",
    "disconnection_reason",
    "call_analysis",
    "call_cost",
    "latency",
    "llm_token_usage",
)


def webhook_payload(event: str, call: dict[str, Any]) -> dict[str, Any]:
    """The body Retell posts for `event`: call_started carries the basic call, call_ended
    everything but call_analysis, call_analyzed the full call; call_inbound is the
    inbound-number webhook `{"event": "call_inbound", "call_inbound": {agent_id,
    agent_version, from_number, to_number}}` sent before the call is connected."""
    if event == "call_inbound":
        inbound = {key: call[key] for key in ("agent_id", "agent_version") if call.get(key) is not None}
        inbound |= {"from_number": call["from_number"], "to_number": call["to_number"]}
        return {"event": "call_inbound", "call_inbound": inbound}
    body = copy.deepcopy(call)
    if event == "call_started":
        for key in _STARTED_DROP:
            body.pop(key, None)
    elif event == "call_ended":
        body.pop("call_analysis", None)
    elif event != "call_analyzed":
        # transcript_updated, transfer_* ... carry the call as it is
        pass
    return {"event": event, "call": body}


def _now_ms() -> int:
    return int(time.time() * 1000)


def _new_id(prefix: str, n: int = 13) -> str:
    return f"{prefix}_{secrets.token_hex(n)}"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> SandboxResponse:
    return SandboxResponse(status, {"status": status, "message": message}, headers or {})


def _rate_limit_headers(seconds: float) -> dict[str, str]:
    # Retell documents no rate-limit headers; these are the ones its Stainless SDK honours.
    return {
        "Retry-After": str(max(1, round(seconds))),
        "retry-after-ms": str(int(seconds * 1000)),
        "x-should-retry": "true",
    }


def _encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def _decode_cursor(value: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None


class BadRequest(Exception):
    """A request the real API would refuse with 400; the message names the field."""


def _int_arg(value: Any, name: str, *, default: int, low: int, high: int) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be an integer") from None
    if not low <= number <= high:
        raise BadRequest(f"{name} must be between {low} and {high}")
    return number


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


def _answers_bad_requests(func: Any) -> Any:
    """Turn BadRequest raised by a handler into Retell's 400 body (the base turns other
    exceptions into 500, as a real server's bug would be)."""

    def handler(self: RetellSandbox, request: SandboxRequest) -> SandboxResponse:
        try:
            return func(self, request)
        except BadRequest as exc:
            return _error(400, str(exc))

    handler.__name__ = func.__name__
    handler.__doc__ = func.__doc__
    return handler


class RetellSandbox(SandboxServer):
    """In-memory Retell workspace: agents, Retell LLMs, phone numbers and calls.

    `api_keys` are the keys it accepts (the demo key by default). `legacy_only=True`
    answers only the pre-May-2026 list routes, like an older deployment or proxy would.
    `concurrency_limit` caps calls in `registered`/`ongoing`, as Retell's plan limit does.
    `seed=True` (the default, for `manage.py run_sandbox`) loads the demo workspace; tests
    pass `seed=False` and add what they need.
    """

    service: ClassVar[str] = "retell"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_keys: list[str] | None = None,
        seed: bool = True,
        legacy_only: bool = False,
        concurrency_limit: int = 20,
    ) -> None:
        super().__init__(host, port)
        self.api_keys: set[str] = set(api_keys or [DEMO_API_KEY])
        self.legacy_only = legacy_only
        self.concurrency_limit = concurrency_limit
        self.agents: dict[str, dict[str, Any]] = {}
        self.llms: dict[str, dict[str, Any]] = {}
        self.phone_numbers: dict[str, dict[str, Any]] = {}
        self.calls: dict[str, dict[str, Any]] = {}
        self.webhook_log: list[dict[str, Any]] = []
        self._state_lock = threading.RLock()
        if seed:
            self.seed_demo()

    # --- state helpers (tests and the demo use them; the HTTP routes use them too) ---
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
            agent_id = agent_id or _new_id("agent")
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
                "last_modification_timestamp": _now_ms(),
            }
            self.agents[agent_id] = agent
            return copy.deepcopy(agent)

    def add_llm(self, *, general_prompt: str = "", begin_message: str | None = None) -> dict[str, Any]:
        with self._state_lock:
            llm = {
                "llm_id": _new_id("llm"),
                "version": 0,
                "is_published": False,
                "model": "gpt-4.1",
                "general_prompt": general_prompt,
                "begin_message": begin_message,
                "general_tools": [],
                "last_modification_timestamp": _now_ms(),
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
                "last_modification_timestamp": _now_ms(),
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
            start = _now_ms() - duration_ms - 60_000 if start_timestamp is None else start_timestamp
            agent = self.agents.get(agent_id, {})
            call: dict[str, Any] = {
                "call_id": call_id or _new_id("call", 14),
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

    def seed_demo(self) -> None:
        """The demo workspace matching `manage.py seed_demo` (agent ids and branch numbers)."""
        prompt = (
            "Begrüßung: Begrüße den Anrufer freundlich im Namen des Salons. Service: Beantworte Fragen "
            "zu Leistungen und Preisen. Termin: Buche, verschiebe oder storniere Termine über Cal.com."
        )
        branches = {
            "agent_demo_1": [("agent_demo_1_1", "+493012345601"), ("agent_demo_1_2", "+498912345602")],
            "agent_demo_2": [("agent_demo_2_1", "+494012345603"), ("agent_demo_2_2", "+494012345604")],
        }
        for company_agent, branch_agents in branches.items():
            self.add_agent(company_agent, agent_name=f"{company_agent} receptionist", prompt=prompt)
            for index, (agent_id, number) in enumerate(branch_agents):
                self.add_agent(agent_id, agent_name=f"{agent_id} branch", prompt=prompt)
                self.add_phone_number(number, inbound_agent_id=agent_id, nickname=agent_id)
                for n in range(3):
                    self.add_call(
                        agent_id=agent_id,
                        from_number=f"+49171000{index}{n:03d}",
                        to_number=number,
                        start_timestamp=_now_ms() - (n + 1) * 3_600_000,
                    )

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

    def describe(self) -> str:
        with self._state_lock:
            return (
                f"demo key {DEMO_API_KEY}, {len(self.agents)} agents, "
                f"{len(self.phone_numbers)} phone numbers, {len(self.calls)} calls"
            )

    def set_call_status(self, call_id: str, status: str, **fields: Any) -> dict[str, Any]:
        with self._state_lock:
            call = self.calls[call_id]
            call["call_status"] = status
            call.update(fields)
            return copy.deepcopy(call)

    def throttle(self, *, times: int = 1, retry_after: float = 1.0, path: str | None = None) -> None:
        """Answer the next `times` requests with 429 and Retry-After / retry-after-ms."""
        self.inject_fault(
            status=429,
            body={"status": 429, "message": "Too many requests, please retry later."},
            headers=_rate_limit_headers(retry_after),
            count=times,
            path=path,
        )

    # --- webhooks ---
    def send_webhook(
        self,
        url: str,
        event: str,
        call: dict[str, Any] | str,
        api_key: str,
        *,
        timestamp_ms: int | None = None,
        timeout: float = 10.0,
    ) -> requests.Response:
        """POST a correctly signed delivery of `event` for `call` (a call dict or the id of a
        call in this sandbox) to `url`, as Retell does (10 s timeout, like webhook_timeout_ms)."""
        if isinstance(call, str):
            with self._state_lock:
                call = copy.deepcopy(self.calls[call])
        body = webhook_body(webhook_payload(event, call))
        headers = sign_webhook(body, api_key, timestamp_ms)
        response = requests.post(url, data=body, headers=headers, timeout=timeout)
        with self.lock:
            self.webhook_log.append({"url": url, "event": event, "status": response.status_code})
        return response

    # --- the upstream's own error shapes ---
    def fault_body(self, status: int) -> Any:
        return {"status": status, "message": f"injected fault {status}"}

    def not_found(self, request: SandboxRequest) -> SandboxResponse:
        return _error(404, f"Cannot {request.method} {request.path}")

    def _handle(self, request: SandboxRequest) -> SandboxResponse:
        if not self._authorized(request):
            return _error(401, "Unauthorized: the API key is missing or invalid.")
        response = super()._handle(request)
        if response.status == 429 and "Retry-After" not in response.headers:
            response.headers.update(_rate_limit_headers(1.0))
        return response

    def _authorized(self, request: SandboxRequest) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and token.strip() in self.api_keys

    def _json_body(self, request: SandboxRequest, *, required: bool = True) -> dict[str, Any]:
        if not request.body:
            if required:
                raise BadRequest("request body must be a JSON object")
            return {}
        try:
            body = json.loads(request.body)
        except ValueError:
            raise BadRequest("request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("request body must be a JSON object")
        return body

    # --- agents ---
    @route("GET", r"/list-agents")
    @_answers_bad_requests
    def list_agents_legacy(self, request: SandboxRequest) -> SandboxResponse:
        with self._state_lock:
            return SandboxResponse(200, [copy.deepcopy(a) for a in self.agents.values()])

    @route("POST", r"/v2/list-agents")
    @_answers_bad_requests
    def list_agents_v2(self, request: SandboxRequest) -> SandboxResponse:
        if self.legacy_only:
            return self.not_found(request)
        try:
            limit = _int_arg(request.arg("limit"), "limit", default=50, low=1, high=1000)
            order = request.arg("sort_order", "descending")
            if order not in ("ascending", "descending"):
                raise BadRequest("sort_order must be ascending or descending")
            criteria = self._json_body(request, required=False).get("filter_criteria") or {}
            channel = criteria.get("channel")
            query = criteria.get("query")
        except BadRequest as exc:
            return _error(400, str(exc))
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
    @_answers_bad_requests
    def get_agent(self, request: SandboxRequest) -> SandboxResponse:
        with self._state_lock:
            agent = self.agents.get(request.params["agent_id"])
            if agent is None:
                return _error(404, f"Agent {request.params['agent_id']} not found")
            version = request.arg("version")
            if version is not None and version != str(agent["version"]):
                return _error(404, f"Agent {agent['agent_id']} has no version {version}")
            return SandboxResponse(200, copy.deepcopy(agent))

    @route("PATCH", r"/update-agent/(?P<agent_id>[^/]+)")
    @_answers_bad_requests
    def update_agent(self, request: SandboxRequest) -> SandboxResponse:
        try:
            body = self._json_body(request)
        except BadRequest as exc:
            return _error(400, str(exc))
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
            return _error(400, f"{unknown[0]} is not an updatable agent field")
        with self._state_lock:
            agent = self.agents.get(request.params["agent_id"])
            if agent is None:
                return _error(404, f"Agent {request.params['agent_id']} not found")
            agent.update(body)
            agent["last_modification_timestamp"] = _now_ms()
            return SandboxResponse(200, copy.deepcopy(agent))

    # --- Retell LLM (where a retell-llm agent's prompt lives) ---
    @route("GET", r"/get-retell-llm/(?P<llm_id>[^/]+)")
    @_answers_bad_requests
    def get_llm(self, request: SandboxRequest) -> SandboxResponse:
        with self._state_lock:
            llm = self.llms.get(request.params["llm_id"])
            if llm is None:
                return _error(404, f"Retell LLM {request.params['llm_id']} not found")
            return SandboxResponse(200, copy.deepcopy(llm))

    @route("PATCH", r"/update-retell-llm/(?P<llm_id>[^/]+)")
    @_answers_bad_requests
    def update_llm(self, request: SandboxRequest) -> SandboxResponse:
        try:
            body = self._json_body(request)
        except BadRequest as exc:
            return _error(400, str(exc))
        allowed = {"general_prompt", "begin_message", "model", "general_tools"}
        unknown = sorted(set(body) - allowed)
        if unknown:
            return _error(400, f"{unknown[0]} is not an updatable Retell LLM field")
        if "general_prompt" in body and not isinstance(body["general_prompt"], str):
            return _error(400, "general_prompt must be a string")
        with self._state_lock:
            llm = self.llms.get(request.params["llm_id"])
            if llm is None:
                return _error(404, f"Retell LLM {request.params['llm_id']} not found")
            llm.update(body)
            llm["last_modification_timestamp"] = _now_ms()
            return SandboxResponse(200, copy.deepcopy(llm))

    # --- phone numbers ---
    @route("GET", r"/list-phone-numbers")
    @_answers_bad_requests
    def list_phone_numbers_legacy(self, request: SandboxRequest) -> SandboxResponse:
        with self._state_lock:
            return SandboxResponse(200, [copy.deepcopy(p) for p in self.phone_numbers.values()])

    @route("GET", r"/v2/list-phone-numbers")
    @_answers_bad_requests
    def list_phone_numbers_v2(self, request: SandboxRequest) -> SandboxResponse:
        if self.legacy_only:
            return self.not_found(request)
        try:
            limit = _int_arg(request.arg("limit"), "limit", default=50, low=1, high=1000)
            order = request.arg("sort_order", "descending")
            if order not in ("ascending", "descending"):
                raise BadRequest("sort_order must be ascending or descending")
        except BadRequest as exc:
            return _error(400, str(exc))
        with self._state_lock:
            items = sorted(
                (copy.deepcopy(p) for p in self.phone_numbers.values()),
                key=lambda p: (p["last_modification_timestamp"], p["phone_number"]),
                reverse=order == "descending",
            )
        return SandboxResponse(200, self._page(items, "phone_number", limit, request.arg("pagination_key")))

    @route("GET", r"/get-phone-number/(?P<number>[^/]+)")
    @_answers_bad_requests
    def get_phone_number(self, request: SandboxRequest) -> SandboxResponse:
        number = unquote(request.params["number"])
        with self._state_lock:
            entry = self.phone_numbers.get(number)
            if entry is None:
                return _error(404, f"Phone number {number} not found")
            return SandboxResponse(200, copy.deepcopy(entry))

    # --- calls ---
    def _sorted_calls(self, order: str) -> list[dict[str, Any]]:
        return sorted(
            (copy.deepcopy(c) for c in self.calls.values()),
            key=lambda c: (c.get("start_timestamp") or 0, c["call_id"]),
            reverse=order == "descending",
        )

    @route("POST", r"/v2/list-calls")
    @_answers_bad_requests
    def list_calls_legacy(self, request: SandboxRequest) -> SandboxResponse:
        """Legacy generation: a bare JSON array; pagination_key is the last call_id (exclusive)."""
        try:
            body = self._json_body(request, required=False)
            limit = _int_arg(body.get("limit"), "limit", default=50, low=1, high=1000)
            order = body.get("sort_order", "descending")
            if order not in ("ascending", "descending"):
                raise BadRequest("sort_order must be ascending or descending")
            criteria = body.get("filter_criteria") or {}
            if not isinstance(criteria, dict):
                raise BadRequest("filter_criteria must be an object")
            with self._state_lock:
                calls = [c for c in self._sorted_calls(order) if _legacy_match(c, criteria)]
        except BadRequest as exc:
            return _error(400, str(exc))
        after = body.get("pagination_key")
        if after:
            ids = [c["call_id"] for c in calls]
            if after not in ids:
                return _error(400, "pagination_key does not name a call of this listing")
            calls = calls[ids.index(after) + 1 :]
        return SandboxResponse(200, calls[:limit])

    @route("POST", r"/v3/list-calls")
    @_answers_bad_requests
    def list_calls_v3(self, request: SandboxRequest) -> SandboxResponse:
        """Current generation: `{items, has_more, pagination_key, total?}` with typed filters."""
        if self.legacy_only:
            return self.not_found(request)
        try:
            body = self._json_body(request, required=False)
            unknown = sorted(
                set(body)
                - {"filter_criteria", "include_total", "limit", "pagination_key", "skip", "sort_order"}
            )
            if unknown:
                raise BadRequest(f"{unknown[0]} is not a known parameter")
            limit = _int_arg(body.get("limit"), "limit", default=50, low=1, high=1000)
            skip = _int_arg(body.get("skip"), "skip", default=0, low=0, high=1_000_000)
            order = body.get("sort_order", "descending")
            if order not in ("ascending", "descending"):
                raise BadRequest("sort_order must be ascending or descending")
            criteria = body.get("filter_criteria") or {}
            if not isinstance(criteria, dict):
                raise BadRequest("filter_criteria must be an object")
            with self._state_lock:
                calls = [c for c in self._sorted_calls(order) if _current_match(c, criteria)]
        except BadRequest as exc:
            return _error(400, str(exc))
        page = self._page(calls, "call_id", limit, body.get("pagination_key"), skip=skip)
        if body.get("include_total"):
            page["total"] = len(calls)
        return SandboxResponse(200, page)

    @route("GET", r"/v2/get-call/(?P<call_id>[^/]+)")
    @_answers_bad_requests
    def get_call(self, request: SandboxRequest) -> SandboxResponse:
        with self._state_lock:
            call = self.calls.get(request.params["call_id"])
            if call is None:
                return _error(404, f"Call {request.params['call_id']} not found")
            return SandboxResponse(200, copy.deepcopy(call))

    @route("POST", r"/v2/create-phone-call")
    @_answers_bad_requests
    def create_phone_call(self, request: SandboxRequest) -> SandboxResponse:
        try:
            body = self._json_body(request)
        except BadRequest as exc:
            return _error(400, str(exc))
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
            return _error(400, f"{unknown[0]} is not a known parameter")
        for name in ("from_number", "to_number"):
            value = body.get(name)
            if not isinstance(value, str) or not value:
                return _error(400, f"{name} is required")
            if not body.get("ignore_e164_validation") and not E164.match(value):
                return _error(400, f"{name} must be an E.164 number")
        variables = body.get("retell_llm_dynamic_variables") or {}
        if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
            return _error(400, "retell_llm_dynamic_variables must map names to strings")
        with self._state_lock:
            number = self.phone_numbers.get(body["from_number"])
            if number is None:
                return _error(404, f"from_number {body['from_number']} is not a number of this workspace")
            agent_id = body.get("override_agent_id") or next(
                (a["agent_id"] for a in number["outbound_agents"]), None
            )
            if agent_id is None:
                return _error(400, "from_number has no outbound agent; pass override_agent_id")
            if agent_id not in self.agents:
                return _error(404, f"Agent {agent_id} not found")
            active = sum(1 for c in self.calls.values() if c["call_status"] in ("registered", "ongoing"))
            if active >= self.concurrency_limit:
                return _error(
                    429,
                    f"Concurrency limit reached: {active} calls in progress (limit {self.concurrency_limit}).",
                    _rate_limit_headers(5.0),
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

    # --- pagination shared by the envelope generation ---
    def _page(
        self,
        items: list[dict[str, Any]],
        key: str,
        limit: int,
        cursor: str | None,
        *,
        skip: int = 0,
    ) -> dict[str, Any]:
        if cursor:
            after = _decode_cursor(cursor)
            ids = [item[key] for item in items]
            if after not in ids:
                raise BadRequest("pagination_key is not valid for this listing")
            items = items[ids.index(after) + 1 :]
        items = items[skip:]
        page, rest = items[:limit], items[limit:]
        return {
            "items": page,
            "has_more": bool(rest),
            "pagination_key": _encode_cursor(page[-1][key]) if rest and page else None,
        }


# The discovery convention of `manage.py run_sandbox` (see /work/sandbox-convention.md).
SANDBOX_CLASS = RetellSandbox
