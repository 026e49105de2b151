"""The Retell server: the phone agents, their numbers and calls, for one tenant at a time.

Upstream reads and writes go through RetellClient with the tenant's credentials (see
tenancy.py: tenant key, else the platform key, else not_configured) and are filtered to the
tenant's agents and numbers. Local reads (recent calls, stats, search) use the Call rows
that import_calls (or the webhooks) wrote. This class declares the operations; the flows live
in agents.py, calls.py and numbers.py, the converters in schemas.py.
"""

from __future__ import annotations

import time

from django.conf import settings

from askpro.selectors import UnknownBranch, call_stats
from mcp_core.contracts import ErrorCode, MCPError, OperationContext
from mcp_core.health import HealthResult, HealthStatus
from mcp_core.schemas import NoParams
from mcp_core.server import MCPServer, operation

from . import agents, calls, numbers
from .client import RetellClient
from .prompt_rules import MAX_LENGTH
from .schemas import (
    AgentDetail,
    CallDay,
    CallDetails,
    CallStatsParams,
    CallStatsResult,
    CreatePhoneCallParams,
    CreatePhoneCallResult,
    GetAgentParams,
    GetCallDetailsParams,
    ImportCallsParams,
    ImportCallsResult,
    ListAgentsResult,
    ListCallsParams,
    ListCallsResult,
    PhoneNumbersResult,
    RecentCallsParams,
    RecentCallsResult,
    SearchCallsParams,
    SearchCallsResult,
    SyncPhoneNumbersParams,
    SyncPhoneNumbersResult,
    TestConnectionResult,
    UpdateAgentPromptParams,
    UpdateAgentPromptResult,
    agent_summary,
    recent_call,
)
from .tenancy import RETELL_KEY, client_for, ctx_tenant_scope


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
            agents=[agent_summary(a, scope.assignment(a["agent_id"])) for a in mine],
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
        return agents.detail(ctx_tenant_scope(ctx), ctx, params.agent_id)

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
        return agents.update_prompt(ctx_tenant_scope(ctx), ctx, params)

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
        return calls.list_live(ctx_tenant_scope(ctx), ctx, params)

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
        return calls.import_recent(ctx_tenant_scope(ctx), ctx, params.days, params.limit)

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
        return calls.details(ctx.require_tenant(), ctx, params.call_id)

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
        return calls.place_call(ctx_tenant_scope(ctx), ctx, params)

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
        rows = calls.local_calls(ctx.require_tenant())
        if params.status:
            rows = rows.filter(status=params.status)
        recent = [recent_call(c) for c in rows.order_by("-started_at")[: params.limit]]
        return RecentCallsResult(calls=recent, count=len(recent))

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
        found = calls.search_local(ctx.require_tenant(), term)
        rows = [recent_call(c) for c in found.order_by("-started_at")[: params.limit]]
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
        return numbers.list_numbers(ctx_tenant_scope(ctx), ctx)

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
        return numbers.sync_numbers(ctx_tenant_scope(ctx), ctx, params.dry_run)

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
