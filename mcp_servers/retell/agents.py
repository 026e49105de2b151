"""The tenant's Retell agents: read in full with their prompt, and a new prompt checked by the
prompt rules and written to the agent's Retell LLM."""

from __future__ import annotations

from django.utils import timezone

from mcp_core.contracts import ErrorCode, MCPError, OperationContext

from .prompt_rules import validate_prompt
from .schemas import (
    AgentDetail,
    UpdateAgentPromptParams,
    UpdateAgentPromptResult,
    agent_detail,
    llm_id,
    ms_to_datetime,
)
from .tenancy import TenantScope, client_for


def detail(scope: TenantScope, ctx: OperationContext, agent_id: str | None) -> AgentDetail:
    """One of the tenant's agents (default: the company's) with its Retell LLM's prompt."""
    agent_id = scope.require_agent(agent_id)
    client, _ = client_for(scope.company)
    agent = client.get_agent(ctx, agent_id)
    llm = llm_id(agent)
    prompt = client.get_llm(ctx, llm).get("general_prompt") if llm else None
    return agent_detail(agent, prompt, scope.assignment(agent_id))


def update_prompt(
    scope: TenantScope, ctx: OperationContext, params: UpdateAgentPromptParams
) -> UpdateAgentPromptResult:
    """Every broken prompt rule is refused at once (field prompt); an agent whose prompt is not
    held by Retell (another engine) is refused; dry_run stops before the write."""
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
    llm = llm_id(agent)
    if llm is None:
        engine = (agent.get("response_engine") or {}).get("type", "unknown")
        raise MCPError(
            ErrorCode.VALIDATION_ERROR,
            f"agent_id: the agent uses the {engine!r} engine; its prompt is not held by Retell",
            details={"field": "agent_id", "problem": "unsupported_engine"},
        )
    prompt = params.prompt.strip()
    previous = client.get_llm(ctx, llm).get("general_prompt")
    previous_length = None if previous is None else len(previous)
    if params.dry_run:
        return UpdateAgentPromptResult(
            agent_id=agent_id,
            llm_id=llm,
            applied=False,
            prompt_length=len(prompt),
            previous_prompt_length=previous_length,
            updated_at=None,
        )
    updated = client.update_llm_prompt(ctx, llm, prompt)
    return UpdateAgentPromptResult(
        agent_id=agent_id,
        llm_id=llm,
        applied=True,
        prompt_length=len(updated.get("general_prompt") or ""),
        previous_prompt_length=previous_length,
        updated_at=ms_to_datetime(updated.get("last_modification_timestamp")) or timezone.now(),
    )
