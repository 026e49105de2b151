"""The Retell server: the phone agents, their numbers and calls, for one tenant at a time.

Upstream reads and writes go through RetellClient with the tenant's credentials (see
tenancy.py: tenant key, else the platform key, else not_configured) and are filtered to the
tenant's agents and numbers. Local reads (recent calls, stats, search) use the Call rows
that import_calls (or the webhooks) wrote.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.db import DataError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from askpro.models import Branch, Call, Company, PhoneNumber
from askpro.selectors import UnknownBranch, call_stats
from mcp_core.contracts import ErrorCode, MCPError, OperationContext
from mcp_core.health import HealthResult, HealthStatus
from mcp_core.schemas import NoParams
from mcp_core.server import MCPServer, operation

from .calls import ImportSkipped, cents_to_amount, import_call, ms_to_datetime
from .client import MAX_PAGES, CallFilter, RetellClient
from .prompt_rules import MAX_LENGTH, validate_prompt
from .schemas import (
    AgentDetail,
    AgentSummary,
    AppointmentRef,
    BranchRef,
    CallDay,
    CallDetails,
    CallStatsParams,
    CallStatsResult,
    CreatePhoneCallParams,
    CreatePhoneCallResult,
    CustomerRef,
    GetAgentParams,
    GetCallDetailsParams,
    ImportCallsParams,
    ImportCallsResult,
    ListAgentsResult,
    ListCallsParams,
    ListCallsResult,
    PhoneNumbersResult,
    RecentCall,
    RecentCallsParams,
    RecentCallsResult,
    RetellCall,
    RetellNumber,
    SearchCallsParams,
    SearchCallsResult,
    SyncedNumber,
    SyncPhoneNumbersParams,
    SyncPhoneNumbersResult,
    TestConnectionResult,
    UpdateAgentPromptParams,
    UpdateAgentPromptResult,
)
from .tenancy import RETELL_KEY, TenantScope, client_for, ctx_tenant_scope, number_agent_ids


# --- helpers ---
def _branch_ref(branch: Branch | None) -> BranchRef | None:
    return None if branch is None else BranchRef(id=branch.pk, name=branch.name)


def _known_call_ids(company: Company, call_ids: list[str]) -> set[str]:
    return set(
        Call.objects.filter(company=company, retell_call_id__in=call_ids).values_list(
            "retell_call_id", flat=True
        )
    )


def _retell_call(call: dict[str, Any], imported: bool) -> RetellCall:
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


def _recent(call: Call) -> RecentCall:
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
        customer=None
        if call.customer is None
        else CustomerRef(id=call.customer.pk, name=call.customer.name, phone=call.customer.phone),
        branch=_branch_ref(call.branch),
    )


def _local_calls(company: Company):
    return (
        Call.objects.filter(company=company)
        .select_related("customer", "branch")
        .annotate(appointment_count=Count("appointments"))
    )


def _llm_id(agent: dict[str, Any]) -> str | None:
    engine = agent.get("response_engine") or {}
    return engine.get("llm_id") if engine.get("type") == "retell-llm" else None


class RetellServer(MCPServer):
    """Retell AI: the tenant's phone agents, their numbers, calls and prompts."""

    name = "retell"
    description = "Retell AI phone agents: agents, prompts, phone numbers, calls (live and imported)."
    webhooks = "mcp_servers.retell.webhooks"  # its inbound webhooks (@webhook)

    # --- agents ---
    @operation(
        description="""List the tenant's Retell agents (the company's and its branches') with their
        name, channel and last change. Agents of other tenants in a shared workspace are not shown.""",
        params=NoParams,
        result=ListAgentsResult,
        scope="read",
        read_only=True,
        open_world=True,
    )
    def list_agents(self, ctx: OperationContext, params: NoParams) -> ListAgentsResult:
        scope = ctx_tenant_scope(ctx)
        client, source = client_for(scope.company)
        agents, generation = client.list_agents(ctx)
        mine = [a for a in agents if scope.owns_agent(a.get("agent_id"))]
        return ListAgentsResult(
            agents=[
                AgentSummary(
                    agent_id=a["agent_id"],
                    agent_name=a.get("agent_name"),
                    channel=a.get("channel"),
                    last_modified=ms_to_datetime(
                        a.get("user_modified_timestamp") or a.get("last_modification_timestamp")
                    ),
                    assignment=scope.assignment(a["agent_id"]),
                )
                for a in mine
            ],
            count=len(mine),
            credential_source=source,
            api_generation=generation,
        )

    @operation(
        description="""One of the tenant's Retell agents in full: voice, language, engine, webhook and
        (for a Retell-LLM agent) its current prompt. Without agent_id: the company's agent.""",
        params=GetAgentParams,
        result=AgentDetail,
        scope="read",
        read_only=True,
        open_world=True,
    )
    def get_agent(self, ctx: OperationContext, params: GetAgentParams) -> AgentDetail:
        scope = ctx_tenant_scope(ctx)
        agent_id = scope.require_agent(params.agent_id)
        client, _ = client_for(scope.company)
        agent = client.get_agent(ctx, agent_id)
        llm_id = _llm_id(agent)
        prompt = client.get_llm(ctx, llm_id).get("general_prompt") if llm_id else None
        return AgentDetail(
            agent_id=agent["agent_id"],
            agent_name=agent.get("agent_name"),
            version=agent.get("version"),
            voice_id=agent.get("voice_id"),
            language=agent.get("language"),
            engine_type=(agent.get("response_engine") or {}).get("type"),
            llm_id=llm_id,
            prompt=prompt,
            webhook_url=agent.get("webhook_url"),
            webhook_events=list(agent.get("webhook_events") or []),
            last_modified=ms_to_datetime(agent.get("last_modification_timestamp")),
            assignment=scope.assignment(agent_id),
        )

    @operation(
        description=f"""Replace the general prompt of one of the tenant's Retell-LLM agents. The prompt is
        validated first and every broken rule is returned (field prompt): {MAX_LENGTH} characters at
        most and 100 at least; it must cover a greeting (Begrüßung), the services (Service/Leistung)
        and appointments (Termin); {{{{placeholders}}}} must be identifiers; no API keys. dry_run
        only validates.""",
        params=UpdateAgentPromptParams,
        result=UpdateAgentPromptResult,
        scope="write",
        idempotent=True,
        open_world=True,
    )
    def update_agent_prompt(
        self, ctx: OperationContext, params: UpdateAgentPromptParams
    ) -> UpdateAgentPromptResult:
        scope = ctx_tenant_scope(ctx)
        agent_id = scope.require_agent(params.agent_id)
        errors = validate_prompt(params.prompt)
        if errors:
            raise MCPError(
                ErrorCode.VALIDATION_ERROR,
                "; ".join(e["message"] for e in errors),
                details={"field": "prompt", "problem": errors[0]["problem"], "errors": errors},
            )
        client, _ = client_for(scope.company)
        agent = client.get_agent(ctx, agent_id)
        llm_id = _llm_id(agent)
        if llm_id is None:
            engine = (agent.get("response_engine") or {}).get("type", "unknown")
            raise MCPError(
                ErrorCode.VALIDATION_ERROR,
                f"agent_id: the agent uses the {engine!r} engine; its prompt is not held by Retell",
                details={"field": "agent_id", "problem": "unsupported_engine"},
            )
        prompt = params.prompt.strip()
        previous = client.get_llm(ctx, llm_id).get("general_prompt")
        if params.dry_run:
            return UpdateAgentPromptResult(
                agent_id=agent_id,
                llm_id=llm_id,
                applied=False,
                prompt_length=len(prompt),
                previous_prompt_length=None if previous is None else len(previous),
                updated_at=None,
            )
        updated = client.update_llm_prompt(ctx, llm_id, prompt)
        return UpdateAgentPromptResult(
            agent_id=agent_id,
            llm_id=llm_id,
            applied=True,
            prompt_length=len(updated.get("general_prompt") or ""),
            previous_prompt_length=None if previous is None else len(previous),
            updated_at=ms_to_datetime(updated.get("last_modification_timestamp")) or timezone.now(),
        )

    # --- calls, live ---
    @operation(
        description="""List the tenant's calls live from Retell, newest first, one page at a time
        (pass the answer's pagination_key for the next page). Filter by status, direction, agent
        and start time. Works with both generations of Retell's list-calls API.""",
        params=ListCallsParams,
        result=ListCallsResult,
        scope="read",
        read_only=True,
        open_world=True,
        timeout=60,
    )
    def list_calls(self, ctx: OperationContext, params: ListCallsParams) -> ListCallsResult:
        scope = ctx_tenant_scope(ctx)
        if params.since and params.until and params.since > params.until:
            raise MCPError(
                ErrorCode.VALIDATION_ERROR,
                "until: must not be before since",
                details={"field": "until", "problem": "invalid_value"},
            )
        agents = [scope.require_agent(params.agent_id)] if params.agent_id else scope.agent_ids
        if not agents:
            raise MCPError(
                ErrorCode.VALIDATION_ERROR,
                "agent_id: this tenant has no Retell agent configured, so none of its calls can be listed",
                details={"field": "agent_id", "problem": "missing"},
            )
        client, _ = client_for(scope.company)
        page = client.list_calls(
            ctx,
            filters=CallFilter(
                agent_ids=agents,
                statuses=list(params.statuses or []),
                directions=[params.direction] if params.direction else [],
                start_after_ms=int(params.since.timestamp() * 1000) if params.since else None,
                start_before_ms=int(params.until.timestamp() * 1000) if params.until else None,
            ),
            limit=params.limit,
            pagination_key=params.pagination_key,
        )
        mine = [c for c in page.items if scope.owns_call(c)]  # the upstream filter, checked again
        known = _known_call_ids(scope.company, [c["call_id"] for c in mine])
        return ListCallsResult(
            calls=[_retell_call(c, c["call_id"] in known) for c in mine],
            count=len(mine),
            has_more=page.has_more,
            pagination_key=page.pagination_key,
            api_generation=page.generation,
        )

    @operation(
        description="""Import the tenant's finished Retell calls of the last N days into local call
        records (transcript, summary, cost, customer by caller number, branch by dialled number).
        Calls already imported are skipped, so running it again adds nothing.""",
        params=ImportCallsParams,
        result=ImportCallsResult,
        scope="write",
        idempotent=True,
        open_world=True,
        timeout=120,
    )
    def import_calls(self, ctx: OperationContext, params: ImportCallsParams) -> ImportCallsResult:
        scope = ctx_tenant_scope(ctx)
        if not scope.agent_ids:
            raise MCPError(
                ErrorCode.VALIDATION_ERROR,
                "agent_id: this tenant has no Retell agent configured, so none of its calls can be imported",
                details={"field": "agent_id", "problem": "missing"},
            )
        client, _ = client_for(scope.company)
        since_ms = int((time.time() - params.days * 86400) * 1000)
        imported = known = unfinished = processed = 0
        errors: list[str] = []
        key: str | None = None
        generation = client.generation
        for _ in range(MAX_PAGES):
            if processed >= params.limit:
                break
            page = client.list_calls(
                ctx,
                filters=CallFilter(agent_ids=scope.agent_ids, start_after_ms=since_ms),
                limit=min(200, params.limit - processed),
                pagination_key=key,
            )
            generation = page.generation
            for call in page.items:
                if processed >= params.limit:
                    break
                if not scope.owns_call(call):
                    continue
                processed += 1
                try:
                    row = import_call(scope, call)
                except ImportSkipped:
                    unfinished += 1
                    continue
                except (KeyError, TypeError, ValueError, DataError) as exc:
                    errors.append(f"{call.get('call_id', '?')}: unreadable call ({type(exc).__name__})")
                    continue
                if row is None:
                    known += 1
                else:
                    imported += 1
            if not page.has_more or not page.pagination_key or not page.items:
                break
            key = page.pagination_key
        return ImportCallsResult(
            imported=imported,
            skipped_known=known,
            skipped_unfinished=unfinished,
            errors=errors,
            total_processed=processed,
            api_generation=generation,
        )

    @operation(
        description="""One call in full (transcript, summary, analysis, recording, customer, branch,
        appointments). call_id may be a local call id or a Retell call_id; a call not imported yet
        is fetched live from Retell. Only the tenant's calls are found.""",
        params=GetCallDetailsParams,
        result=CallDetails,
        scope="read",
        read_only=True,
        open_world=True,
    )
    def get_call_details(self, ctx: OperationContext, params: GetCallDetailsParams) -> CallDetails:
        company = ctx.require_tenant()
        wanted = params.call_id.strip()
        # A local id is a bigint; longer digit strings can only be Retell ids.
        is_local_id = wanted.isdigit() and len(wanted) <= 18
        lookup = Q(retell_call_id=wanted) | (Q(pk=int(wanted)) if is_local_id else Q())
        local = (
            Call.objects.filter(company=company).filter(lookup).select_related("customer", "branch").first()
        )
        if local is not None:
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
                customer=None
                if local.customer is None
                else CustomerRef(id=local.customer.pk, name=local.customer.name, phone=local.customer.phone),
                branch=_branch_ref(local.branch),
                appointments=[
                    AppointmentRef(id=a.pk, starts_at=a.starts_at, status=a.status)
                    for a in local.appointments.order_by("starts_at")
                ],
            )
        scope = TenantScope.load(company)
        client, _ = client_for(company)
        missing = MCPError(
            ErrorCode.NOT_FOUND,
            f"call_id: no call {wanted!r} for this tenant",
            details={"field": "call_id"},
        )
        try:
            call = client.get_call(ctx, wanted)
        except MCPError as exc:
            if exc.code is ErrorCode.NOT_FOUND:
                raise missing from None
            raise
        if not scope.owns_call(call):
            raise missing  # another tenant's call looks exactly like a missing one
        summary = _retell_call(call, imported=False)
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
            branch=_branch_ref(scope.branch_for_call(call)),
            appointments=[],
        )

    @operation(
        description="""Create an outbound phone call from one of the tenant's numbers (Retell dials
        it). The number's outbound agent answers unless agent_id names another of the tenant's
        agents. Each call costs money and rings a real phone: it is never retried automatically.""",
        params=CreatePhoneCallParams,
        result=CreatePhoneCallResult,
        scope="write",
        open_world=True,
    )
    def create_phone_call(
        self, ctx: OperationContext, params: CreatePhoneCallParams
    ) -> CreatePhoneCallResult:
        scope = ctx_tenant_scope(ctx)
        if params.from_number not in scope.numbers:
            raise MCPError(
                ErrorCode.NOT_FOUND,
                f"from_number: {params.from_number} is not one of this tenant's numbers",
                details={"field": "from_number"},
            )
        body: dict[str, Any] = {"from_number": params.from_number, "to_number": params.to_number}
        if params.agent_id:
            body["override_agent_id"] = scope.require_agent(params.agent_id)
        if params.metadata:
            body["metadata"] = params.metadata
        if params.dynamic_variables:
            body["retell_llm_dynamic_variables"] = params.dynamic_variables
        client, _ = client_for(scope.company)
        call = client.create_phone_call(ctx, body)
        return CreatePhoneCallResult(
            call_id=call["call_id"],
            call_status=call.get("call_status") or "registered",
            agent_id=call.get("agent_id"),
            from_number=call.get("from_number") or params.from_number,
            to_number=call.get("to_number") or params.to_number,
            direction=call.get("direction") or "outbound",
        )

    # --- calls, local ---
    @operation(
        description="""The tenant's most recent calls from the local records (imported or received by
        webhook), with customer, branch and whether an appointment came of it.""",
        params=RecentCallsParams,
        result=RecentCallsResult,
        scope="read",
        read_only=True,
    )
    def get_recent_calls(self, ctx: OperationContext, params: RecentCallsParams) -> RecentCallsResult:
        calls = _local_calls(ctx.require_tenant())
        if params.status:
            calls = calls.filter(status=params.status)
        rows = [_recent(c) for c in calls.order_by("-started_at")[: params.limit]]
        return RecentCallsResult(calls=rows, count=len(rows))

    @operation(
        description="""Call statistics from the local records over the last N days: totals, failures,
        successes, calls that led to an appointment, average duration, cost, and a daily series.""",
        params=CallStatsParams,
        result=CallStatsResult,
        scope="read",
        read_only=True,
    )
    def get_call_stats(self, ctx: OperationContext, params: CallStatsParams) -> CallStatsResult:
        try:
            stats = call_stats(ctx.require_tenant(), days=params.days, branch_id=params.branch_id)
        except UnknownBranch:
            raise MCPError(
                ErrorCode.NOT_FOUND,
                f"branch_id: no branch {params.branch_id} for this tenant",
                details={"field": "branch_id"},
            ) from None
        return CallStatsResult(**{**stats, "daily": [CallDay(**day) for day in stats["daily"]]})

    @operation(
        description="""Search the tenant's local call records by caller or dialled number, customer
        name or phone, or words of the call summary; newest first.""",
        params=SearchCallsParams,
        result=SearchCallsResult,
        scope="read",
        read_only=True,
    )
    def search_calls(self, ctx: OperationContext, params: SearchCallsParams) -> SearchCallsResult:
        term = params.query.strip()
        if len(term) < 2:
            raise MCPError(
                ErrorCode.VALIDATION_ERROR,
                "query: needs at least 2 characters besides spaces",
                details={"field": "query", "problem": "invalid_value"},
            )
        calls = _local_calls(ctx.require_tenant()).filter(
            Q(from_number__icontains=term)
            | Q(to_number__icontains=term)
            | Q(customer__name__icontains=term)
            | Q(customer__phone__icontains=term)
            | Q(summary__icontains=term)
        )
        rows = [_recent(c) for c in calls.order_by("-started_at")[: params.limit]]
        return SearchCallsResult(query=term, calls=rows, count=len(rows))

    # --- phone numbers ---
    @operation(
        description="""The tenant's phone numbers as Retell knows them (live), with the agents they
        ring and the local branch each one is synced to.""",
        params=NoParams,
        result=PhoneNumbersResult,
        scope="read",
        read_only=True,
        open_world=True,
    )
    def get_phone_numbers(self, ctx: OperationContext, params: NoParams) -> PhoneNumbersResult:
        scope = ctx_tenant_scope(ctx)
        client, _ = client_for(scope.company)
        entries, generation = client.list_phone_numbers(ctx)
        rows = []
        for entry in entries:
            if not scope.owns_number(entry):
                continue
            local = scope.numbers.get(entry["phone_number"])
            rows.append(
                RetellNumber(
                    phone_number=entry["phone_number"],
                    nickname=entry.get("nickname"),
                    phone_number_type=entry.get("phone_number_type"),
                    inbound_agent_ids=[a["agent_id"] for a in entry.get("inbound_agents") or []],
                    outbound_agent_ids=[a["agent_id"] for a in entry.get("outbound_agents") or []],
                    branch=_branch_ref(local.branch if local else None),
                    synced=local is not None,
                )
            )
        return PhoneNumbersResult(phone_numbers=rows, count=len(rows), api_generation=generation)

    @operation(
        description="""Bring the tenant's Retell numbers into its local phone numbers: each number is
        created or updated (type retell, its inbound agent) and assigned to a branch — the one
        already set, else the branch whose agent it rings, else a branch named like the number's
        nickname, else the only branch. A number that belongs to another tenant is refused
        (conflict) and then nothing is written.""",
        params=SyncPhoneNumbersParams,
        result=SyncPhoneNumbersResult,
        scope="write",
        idempotent=True,
        open_world=True,
    )
    def sync_phone_numbers(
        self, ctx: OperationContext, params: SyncPhoneNumbersParams
    ) -> SyncPhoneNumbersResult:
        scope = ctx_tenant_scope(ctx)
        client, _ = client_for(scope.company)
        entries, _ = client.list_phone_numbers(ctx)
        entries = [e for e in entries if scope.owns_number(e)]
        numbers = [e["phone_number"] for e in entries]
        foreign = sorted(
            PhoneNumber.objects.filter(number__in=numbers)
            .exclude(company=scope.company)
            .values_list("number", flat=True)
        )
        if foreign:
            raise MCPError(
                ErrorCode.CONFLICT,
                f"phone numbers {', '.join(foreign)} belong to another tenant; nothing was synced",
                details={"numbers": foreign},
            )
        branches = list(Branch.objects.filter(company=scope.company, is_active=True))
        results: list[SyncedNumber] = []
        counts = {"created": 0, "updated": 0, "unchanged": 0}
        without_branch: list[str] = []
        with transaction.atomic():
            for entry in entries:
                number = entry["phone_number"]
                inbound = [a["agent_id"] for a in entry.get("inbound_agents") or []] or number_agent_ids(
                    entry
                )
                agent_id = inbound[0] if inbound else ""
                row = (
                    PhoneNumber.objects.select_for_update(of=("self",))
                    .select_related("branch")
                    .filter(company=scope.company, number=number)
                    .first()
                )
                branch = (row.branch if row else None) or _match_branch(scope, entry, agent_id, branches)
                wanted = {
                    "branch": branch,
                    "type": PhoneNumber.Type.RETELL,
                    "retell_phone_id": number,
                    "retell_agent_id": agent_id,
                    "is_active": True,
                }
                if row is None:
                    action = "created"
                    if not params.dry_run:
                        PhoneNumber.objects.create(company=scope.company, number=number, **wanted)
                else:
                    changed = {k: v for k, v in wanted.items() if getattr(row, k) != v}
                    action = "updated" if changed else "unchanged"
                    if changed and not params.dry_run:
                        for key, value in changed.items():
                            setattr(row, key, value)
                        row.save(update_fields=list(changed))
                if branch is not None and agent_id and not branch.retell_agent_id and not params.dry_run:
                    branch.retell_agent_id = agent_id
                    branch.save(update_fields=["retell_agent_id"])
                if branch is None:
                    without_branch.append(number)
                counts[action] += 1
                results.append(
                    SyncedNumber(
                        phone_number=number,
                        action=action,
                        agent_id=agent_id or None,
                        branch=_branch_ref(branch),
                    )
                )
        return SyncPhoneNumbersResult(
            numbers=results, without_branch=without_branch, dry_run=params.dry_run, **counts
        )

    # --- connection ---
    @operation(
        description="""Check the tenant's Retell credentials with one cheap authenticated call: which
        key is used (tenant or platform), how many of the tenant's agents it sees, and whether the
        company's configured agent exists.""",
        params=NoParams,
        result=TestConnectionResult,
        scope="read",
        read_only=True,
        open_world=True,
        timeout=15,
    )
    def test_connection(self, ctx: OperationContext, params: NoParams) -> TestConnectionResult:
        scope = ctx_tenant_scope(ctx)
        client, source = client_for(scope.company)
        started = time.perf_counter()
        agents, generation = client.list_agents(ctx)
        latency = (time.perf_counter() - started) * 1000
        ids = {a.get("agent_id") for a in agents}
        configured = scope.company_agent_id or None
        return TestConnectionResult(
            connected=True,
            credential_source=source,
            api_generation=generation,
            agent_count=sum(1 for agent_id in ids if scope.owns_agent(agent_id)),
            configured_agent_id=configured,
            configured_agent_found=bool(configured and configured in ids),
            latency_ms=round(latency, 1),
        )

    # --- health ---
    def is_configured(self) -> bool:
        return RETELL_KEY.is_configured()

    def health(self) -> HealthResult:
        """One cheap authenticated call (list agents, page size 1) per credential in use: the
        platform key and up to HEALTH_TENANT_KEYS tenants' own keys, so a tenant with a
        broken key shows up even when the platform key works."""
        checks = [(c.label, c.secret) for c in RETELL_KEY.health_credentials(HEALTH_TENANT_KEYS)]
        started = time.perf_counter()
        failures: list[str] = []
        budget_ends = started + HEALTH_BUDGET_SECONDS  # inside the health report's own 5 s timeout
        for label, api_key in checks:
            left = budget_ends - time.perf_counter()
            if left <= 0.05:
                failures.append(f"{label}: not checked, the health budget ran out")
                continue
            client = RetellClient(api_key=api_key, base_url=settings.RETELL_BASE_URL)
            client.read_timeout = min(3.0, left)  # an instance override of the class default
            client.max_retries = 0
            try:
                client.list_agents_page(None, limit=1)
            except MCPError as exc:
                failures.append(f"{label}: {exc.message}")
        latency = (time.perf_counter() - started) * 1000
        if not failures:
            status = HealthStatus.DEGRADED if latency > 2000 else HealthStatus.HEALTHY
            return HealthResult(status, f"{len(checks)} credential(s) accepted by Retell", latency_ms=latency)
        if len(failures) < len(checks):
            return HealthResult(
                HealthStatus.DEGRADED,
                f"{len(failures)} of {len(checks)} credentials failing; " + "; ".join(failures),
                latency_ms=latency,
            )
        return HealthResult(HealthStatus.UNHEALTHY, "; ".join(failures), latency_ms=latency)


HEALTH_TENANT_KEYS = 3
HEALTH_BUDGET_SECONDS = 4.0


def _match_branch(
    scope: TenantScope, entry: dict[str, Any], agent_id: str, branches: list[Branch]
) -> Branch | None:
    if agent_id in scope.branch_agents:
        return scope.branch_agents[agent_id]
    nickname = (entry.get("nickname") or "").strip().lower()
    if nickname:
        for branch in branches:
            if nickname in (branch.name.lower(), branch.slug.lower()):
                return branch
    if len(branches) == 1:
        return branches[0]
    return None
