"""Which Retell credentials and which Retell records belong to a tenant.

Credentials: the tenant's own `retell_api_key`, else the platform's RETELL_API_KEY; neither
means not_configured (never mock data). Because the platform key is one Retell workspace
shared by several tenants, everything read from Retell is filtered to the tenant: its
agents are `company.retell_agent_id` and its branches' `retell_agent_id`, its numbers are
its PhoneNumber rows. A call belongs to the tenant when its agent or one of its two numbers
is the tenant's; a number when it is the tenant's or rings one of the tenant's agents.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.conf import settings

from askpro.models import Branch, Company, PhoneNumber
from mcp_core.contracts import ErrorCode, MCPError, OperationContext
from mcp_core.tenancy import TenantCredentials

from .client import RetellClient

RETELL_KEY = TenantCredentials(
    service="retell", tenant_field="retell_api_key", platform_setting="RETELL_API_KEY", what="Retell API key"
)


def client_for(company: Company | None) -> tuple[RetellClient, str]:
    """The tenant's client (its own key, else the platform's) and which key it is."""
    found = RETELL_KEY.resolve(company)
    return RetellClient(api_key=found.secret, base_url=settings.RETELL_BASE_URL), found.source


class TenantScope:
    """The tenant's Retell agent ids and phone numbers, each read once per call and only
    when an operation needs it (one query each)."""

    def __init__(self, company: Company) -> None:
        self.company = company
        self.company_agent_id = company.retell_agent_id

    @cached_property
    def branch_agents(self) -> dict[str, Branch]:
        """agent id -> branch"""
        branches = Branch.objects.filter(company=self.company).exclude(retell_agent_id="")
        return {b.retell_agent_id: b for b in branches}

    @cached_property
    def numbers(self) -> dict[str, PhoneNumber]:
        """E.164 -> the tenant's PhoneNumber row"""
        rows = PhoneNumber.objects.filter(company=self.company).select_related("branch")
        return {n.number: n for n in rows}

    @cached_property
    def agent_ids(self) -> list[str]:
        ids = [self.company_agent_id] if self.company_agent_id else []
        return ids + [a for a in sorted(self.branch_agents) if a not in ids]

    def owns_agent(self, agent_id: str | None) -> bool:
        return bool(agent_id) and agent_id in self.agent_ids

    def require_agent(self, agent_id: str | None, field: str = "agent_id") -> str:
        """The agent the caller named (or the company's), refused unless it is the tenant's.

        Another tenant's agent is answered exactly like an unknown one, so that its
        existence does not leak."""
        agent_id = agent_id or self.company_agent_id
        if not agent_id:
            raise MCPError(
                ErrorCode.VALIDATION_ERROR,
                f"{field}: is required (this tenant has no default Retell agent configured)",
                details={"field": field, "problem": "missing"},
            )
        if not self.owns_agent(agent_id):
            raise MCPError(
                ErrorCode.NOT_FOUND,
                f"{field}: no Retell agent {agent_id!r} is configured for this tenant",
                details={"field": field},
            )
        return agent_id

    def owns_call(self, call: dict[str, Any]) -> bool:
        return (
            self.owns_agent(call.get("agent_id"))
            or call.get("to_number") in self.numbers
            or call.get("from_number") in self.numbers
        )

    def owns_number(self, entry: dict[str, Any]) -> bool:
        if entry.get("phone_number") in self.numbers:
            return True
        return any(self.owns_agent(agent_id) for agent_id in number_agent_ids(entry))

    def assignment(self, agent_id: str) -> str:
        if agent_id == self.company_agent_id:
            return "company"
        branch = self.branch_agents.get(agent_id)
        return f"branch:{branch.name}" if branch else "unassigned"

    def branch_for_call(self, call: dict[str, Any]) -> Branch | None:
        """The branch of the dialled number (inbound) or calling number (outbound), else the
        branch whose agent took the call."""
        ours = call.get("from_number") if call.get("direction") == "outbound" else call.get("to_number")
        row = self.numbers.get(ours or "")
        if row is not None and row.branch is not None:
            return row.branch
        return self.branch_agents.get(call.get("agent_id") or "")


def number_agent_ids(entry: dict[str, Any]) -> list[str]:
    """Agent ids bound to a Retell number (current weighted lists or the older single ids)."""
    ids = [
        a.get("agent_id") for a in (entry.get("inbound_agents") or []) + (entry.get("outbound_agents") or [])
    ]
    ids += [entry.get("inbound_agent_id"), entry.get("outbound_agent_id")]
    return [agent_id for agent_id in ids if agent_id]


def ctx_tenant_scope(ctx: OperationContext) -> TenantScope:
    return TenantScope(ctx.require_tenant())
