"""Params and results of the Retell operations (msgspec Structs; JSON Schemas come from them),
and the converters from Retell's objects and the local rows to those results (no I/O here).

Units: Retell timestamps and durations are milliseconds since the epoch; `call_cost.
combined_cost` is in cents (the local `Call.cost` is in currency units, so / 100).
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from mcp_core.schemas import BIGINT_MAX, Params, Result

from .client import MAX_PAGE_SIZE
from .prompt_rules import MAX_LENGTH

if TYPE_CHECKING:
    from askpro.models import Branch, Call, Customer

Meta = msgspec.Meta
E164 = r"^\+[1-9][0-9]{6,14}$"
CallStatus = Literal["registered", "not_connected", "ongoing", "ended", "error"]
Direction = Literal["inbound", "outbound"]
LocalStatus = Literal["registered", "ongoing", "ended", "error"]


# --- shared result shapes ---
class BranchRef(Result):
    id: int
    name: str


class CustomerRef(Result):
    id: int
    name: str
    phone: str


class AgentSummary(Result):
    agent_id: str
    agent_name: str | None
    channel: str | None
    last_modified: dt.datetime | None
    assignment: Annotated[str, Meta(description="company, branch:<name> or unassigned")]


class ListAgentsResult(Result):
    agents: list[AgentSummary]
    count: int
    credential_source: Annotated[str, Meta(description="tenant or platform key")]
    api_generation: Annotated[str, Meta(description="current (cursor envelopes) or legacy (arrays)")]


class GetAgentParams(Params):
    agent_id: (
        Annotated[str, Meta(min_length=1, max_length=100, description="Default: the company's agent")] | None
    ) = None


class AgentDetail(Result):
    agent_id: str
    agent_name: str | None
    version: int | None
    voice_id: str | None
    language: str | None
    engine_type: str | None
    llm_id: str | None
    prompt: Annotated[str | None, Meta(description="The Retell LLM's general_prompt, if Retell holds it")]
    webhook_url: str | None
    webhook_events: list[str]
    last_modified: dt.datetime | None
    assignment: str


class RetellCall(Result):
    call_id: str
    agent_id: str | None
    call_status: str
    direction: str | None
    from_number: str | None
    to_number: str | None
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    duration_sec: int | None
    cost: Annotated[float | None, Meta(description="Currency units (Retell reports cents)")]
    disconnection_reason: str | None
    call_successful: bool | None
    user_sentiment: str | None
    summary: str | None
    imported: Annotated[bool, Meta(description="A local Call row exists for it")]


class ListCallsParams(Params):
    limit: Annotated[int, Meta(ge=1, le=MAX_PAGE_SIZE)] = 50
    pagination_key: (
        Annotated[str, Meta(min_length=1, max_length=500, description="From the previous page's answer")]
        | None
    ) = None
    statuses: list[CallStatus] | None = None
    direction: Direction | None = None
    agent_id: (
        Annotated[str, Meta(min_length=1, max_length=100, description="One of the tenant's agents")] | None
    ) = None
    since: (
        Annotated[dt.datetime, Meta(description="Calls that started at or after (ISO 8601, with zone)")]
        | None
    ) = None
    until: dt.datetime | None = None


class ListCallsResult(Result):
    calls: list[RetellCall]
    count: int
    has_more: bool
    pagination_key: str | None
    api_generation: str


class ImportCallsParams(Params):
    limit: Annotated[int, Meta(ge=1, le=500, description="At most this many calls are looked at")] = 100
    days: Annotated[int, Meta(ge=1, le=90, description="Calls that started in the last N days")] = 7


class ImportCallsResult(Result):
    imported: int
    skipped_known: int
    skipped_unfinished: int
    errors: list[str]
    total_processed: int
    api_generation: str


class GetCallDetailsParams(Params):
    call_id: Annotated[
        str, Meta(min_length=1, max_length=100, description="A local call id or a Retell call_id")
    ]


class AppointmentRef(Result):
    id: int
    starts_at: dt.datetime
    status: str


class CallDetails(Result):
    source: Annotated[str, Meta(description="local (imported row) or retell (fetched live)")]
    id: int | None
    retell_call_id: str | None
    agent_id: str | None
    status: str
    direction: str | None
    from_number: str | None
    to_number: str | None
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    duration_sec: int | None
    cost: float | None
    transcript: str
    summary: str
    sentiment: str
    call_successful: bool | None
    disconnection_reason: str
    recording_url: str | None
    analysis: dict[str, Any]
    customer: CustomerRef | None
    branch: BranchRef | None
    appointments: list[AppointmentRef]


class RecentCallsParams(Params):
    limit: Annotated[int, Meta(ge=1, le=100)] = 50
    status: LocalStatus | None = None


class RecentCall(Result):
    id: int
    retell_call_id: str | None
    from_number: str
    to_number: str
    direction: str
    status: str
    started_at: dt.datetime
    duration_sec: int
    cost: float
    call_successful: bool | None
    appointment_booked: bool
    customer: CustomerRef | None
    branch: BranchRef | None


class RecentCallsResult(Result):
    calls: list[RecentCall]
    count: int


class CallStatsParams(Params):
    days: Annotated[int, Meta(ge=1, le=365)] = 7
    branch_id: Annotated[int, Meta(ge=1, le=BIGINT_MAX)] | None = None


class CallDay(Result):
    date: dt.date
    total: int
    ended: int
    failed: int
    avg_duration_sec: float | None
    total_cost: float


class CallStatsResult(Result):
    days: int
    total: int
    ended: int
    failed: int
    successful: int
    with_appointment: int
    avg_duration_sec: float | None
    total_cost: float
    first_call_at: dt.datetime | None
    last_call_at: dt.datetime | None
    daily: list[CallDay]


class SearchCallsParams(Params):
    query: Annotated[
        str,
        Meta(min_length=2, max_length=100, description="Part of a number, a customer name or the summary"),
    ]
    limit: Annotated[int, Meta(ge=1, le=100)] = 20


class SearchCallsResult(Result):
    query: str
    calls: list[RecentCall]
    count: int


class RetellNumber(Result):
    phone_number: str
    nickname: str | None
    phone_number_type: str | None
    inbound_agent_ids: list[str]
    outbound_agent_ids: list[str]
    branch: BranchRef | None
    synced: Annotated[bool, Meta(description="A local PhoneNumber row exists for this tenant")]


class PhoneNumbersResult(Result):
    phone_numbers: list[RetellNumber]
    count: int
    api_generation: str


class SyncPhoneNumbersParams(Params):
    dry_run: Annotated[bool, Meta(description="Report what would change, write nothing")] = False


class SyncedNumber(Result):
    phone_number: str
    action: Annotated[str, Meta(description="created, updated or unchanged")]
    agent_id: str | None
    branch: BranchRef | None


class SyncPhoneNumbersResult(Result):
    numbers: list[SyncedNumber]
    created: int
    updated: int
    unchanged: int
    without_branch: Annotated[list[str], Meta(description="Numbers no branch could be matched to")]
    dry_run: bool


class UpdateAgentPromptParams(Params):
    prompt: Annotated[
        str, Meta(max_length=MAX_LENGTH * 2, description="The agent's new general prompt; see the rules")
    ]
    agent_id: (
        Annotated[str, Meta(min_length=1, max_length=100, description="Default: the company's agent")] | None
    ) = None
    dry_run: Annotated[bool, Meta(description="Only validate; send nothing")] = False


class UpdateAgentPromptResult(Result):
    agent_id: str
    llm_id: str
    applied: bool
    prompt_length: int
    previous_prompt_length: int | None
    updated_at: dt.datetime | None


class CreatePhoneCallParams(Params):
    from_number: Annotated[str, Meta(pattern=E164, description="One of the tenant's numbers, E.164")]
    to_number: Annotated[str, Meta(pattern=E164, description="Who to call, E.164")]
    agent_id: (
        Annotated[str, Meta(min_length=1, max_length=100, description="Override the number's outbound agent")]
        | None
    ) = None
    metadata: dict[str, str] | None = None
    dynamic_variables: (
        Annotated[dict[str, str], Meta(description="Retell LLM dynamic variables for this call")] | None
    ) = None


class CreatePhoneCallResult(Result):
    call_id: str
    call_status: str
    agent_id: str | None
    from_number: str
    to_number: str
    direction: str


class TestConnectionResult(Result):
    connected: bool
    credential_source: str
    api_generation: str
    agent_count: Annotated[int, Meta(description="The tenant's agents visible with these credentials")]
    configured_agent_id: str | None
    configured_agent_found: bool
    latency_ms: float


# --- units ---
def ms_to_datetime(value: Any) -> dt.datetime | None:
    if value in (None, ""):
        return None
    return dt.datetime.fromtimestamp(int(value) / 1000, tz=dt.UTC)


def cents_to_amount(value: Any) -> Decimal:
    if value in (None, ""):
        return Decimal("0")
    try:
        return (Decimal(str(value)) / 100).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
    except InvalidOperation:
        return Decimal("0")


# --- converters ---
def branch_ref(branch: Branch | None) -> BranchRef | None:
    return None if branch is None else BranchRef(id=branch.pk, name=branch.name)


def customer_ref(customer: Customer | None) -> CustomerRef | None:
    return None if customer is None else CustomerRef(id=customer.pk, name=customer.name, phone=customer.phone)


def llm_id(agent: dict[str, Any]) -> str | None:
    """The Retell LLM holding a retell-llm agent's prompt (other engines hold their own)."""
    engine = agent.get("response_engine") or {}
    return engine.get("llm_id") if engine.get("type") == "retell-llm" else None


def agent_summary(agent: dict[str, Any], assignment: str) -> AgentSummary:
    return AgentSummary(
        agent_id=agent["agent_id"],
        agent_name=agent.get("agent_name"),
        channel=agent.get("channel"),
        last_modified=ms_to_datetime(
            agent.get("user_modified_timestamp") or agent.get("last_modification_timestamp")
        ),
        assignment=assignment,
    )


def agent_detail(agent: dict[str, Any], prompt: str | None, assignment: str) -> AgentDetail:
    return AgentDetail(
        agent_id=agent["agent_id"],
        agent_name=agent.get("agent_name"),
        version=agent.get("version"),
        voice_id=agent.get("voice_id"),
        language=agent.get("language"),
        engine_type=(agent.get("response_engine") or {}).get("type"),
        llm_id=llm_id(agent),
        prompt=prompt,
        webhook_url=agent.get("webhook_url"),
        webhook_events=list(agent.get("webhook_events") or []),
        last_modified=ms_to_datetime(agent.get("last_modification_timestamp")),
        assignment=assignment,
    )


def retell_call(call: dict[str, Any], imported: bool) -> RetellCall:
    analysis = call.get("call_analysis") or {}
    duration = call.get("duration_ms")
    cost = (call.get("call_cost") or {}).get("combined_cost")
    return RetellCall(
        call_id=call["call_id"],
        agent_id=call.get("agent_id"),
        call_status=call.get("call_status") or "unknown",
        direction=call.get("direction"),
        from_number=call.get("from_number"),
        to_number=call.get("to_number"),
        started_at=ms_to_datetime(call.get("start_timestamp")),
        ended_at=ms_to_datetime(call.get("end_timestamp")),
        duration_sec=None if duration is None else round(duration / 1000),
        cost=None if cost is None else float(cents_to_amount(cost)),
        disconnection_reason=call.get("disconnection_reason"),
        call_successful=analysis.get("call_successful"),
        user_sentiment=analysis.get("user_sentiment"),
        summary=analysis.get("call_summary"),
        imported=imported,
    )


def recent_call(call: Call) -> RecentCall:
    """A local Call row (annotated with appointment_count) as a list entry."""
    return RecentCall(
        id=call.pk,
        retell_call_id=call.retell_call_id,
        from_number=call.from_number,
        to_number=call.to_number,
        direction=call.direction,
        status=call.status,
        started_at=call.started_at,
        duration_sec=call.duration_sec,
        cost=float(call.cost),
        call_successful=call.call_successful,
        appointment_booked=bool(getattr(call, "appointment_count", 0)),
        customer=customer_ref(call.customer),
        branch=branch_ref(call.branch),
    )


def local_call_details(local: Call) -> CallDetails:
    return CallDetails(
        source="local",
        id=local.pk,
        retell_call_id=local.retell_call_id,
        agent_id=local.agent_id or None,
        status=local.status,
        direction=local.direction,
        from_number=local.from_number,
        to_number=local.to_number,
        started_at=local.started_at,
        ended_at=local.ended_at,
        duration_sec=local.duration_sec,
        cost=float(local.cost),
        transcript=local.transcript,
        summary=local.summary,
        sentiment=local.sentiment,
        call_successful=local.call_successful,
        disconnection_reason=local.disconnection_reason,
        recording_url=(local.analysis or {}).get("recording_url"),
        analysis=local.analysis or {},
        customer=customer_ref(local.customer),
        branch=branch_ref(local.branch),
        appointments=[
            AppointmentRef(id=a.pk, starts_at=a.starts_at, status=a.status)
            for a in local.appointments.order_by("starts_at")
        ],
    )


def live_call_details(call: dict[str, Any], branch: Branch | None) -> CallDetails:
    summary = retell_call(call, imported=False)
    analysis = call.get("call_analysis") or {}
    return CallDetails(
        source="retell",
        id=None,
        retell_call_id=call["call_id"],
        agent_id=call.get("agent_id"),
        status=summary.call_status,
        direction=summary.direction,
        from_number=summary.from_number,
        to_number=summary.to_number,
        started_at=summary.started_at,
        ended_at=summary.ended_at,
        duration_sec=summary.duration_sec,
        cost=summary.cost,
        transcript=call.get("transcript") or "",
        summary=analysis.get("call_summary") or "",
        sentiment=analysis.get("user_sentiment") or "",
        call_successful=analysis.get("call_successful"),
        disconnection_reason=call.get("disconnection_reason") or "",
        recording_url=call.get("recording_url"),
        analysis=analysis,
        customer=None,
        branch=branch_ref(branch),
        appointments=[],
    )
