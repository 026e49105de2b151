"""Params and results of the Retell operations (msgspec Structs; JSON Schemas come from them)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec

from mcp_core.schemas import BIGINT_MAX, Params, Result

from .prompt_rules import MAX_LENGTH

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
    limit: Annotated[int, Meta(ge=1, le=1000)] = 50
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
