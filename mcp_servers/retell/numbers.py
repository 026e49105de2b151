"""The tenant's Retell phone numbers: listed live with the branch each rings locally, and
synced into local PhoneNumber rows (all or nothing when a number belongs to another tenant)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from askpro.models import Branch, PhoneNumber
from mcp_core.contracts import ErrorCode, MCPError, OperationContext

from .schemas import PhoneNumbersResult, RetellNumber, SyncedNumber, SyncPhoneNumbersResult, branch_ref
from .tenancy import TenantScope, client_for, number_agent_ids


def list_numbers(scope: TenantScope, ctx: OperationContext) -> PhoneNumbersResult:
    """The tenant's numbers as Retell knows them, with the agents they ring and their branch."""
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
                branch=branch_ref(local.branch if local else None),
                synced=local is not None,
            )
        )
    return PhoneNumbersResult(phone_numbers=rows, count=len(rows), api_generation=generation)


def sync_numbers(scope: TenantScope, ctx: OperationContext, dry_run: bool) -> SyncPhoneNumbersResult:
    """Create or update a local PhoneNumber per Retell number of the tenant, each assigned to
    a branch (see _match_branch); dry_run says what would change and writes nothing."""
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
            inbound = [a["agent_id"] for a in entry.get("inbound_agents") or []] or number_agent_ids(entry)
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
                if not dry_run:
                    PhoneNumber.objects.create(company=scope.company, number=number, **wanted)
            else:
                changed = {k: v for k, v in wanted.items() if getattr(row, k) != v}
                action = "updated" if changed else "unchanged"
                if changed and not dry_run:
                    for key, value in changed.items():
                        setattr(row, key, value)
                    row.save(update_fields=list(changed))
            if branch is not None and agent_id and not branch.retell_agent_id and not dry_run:
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
                    branch=branch_ref(branch),
                )
            )
    return SyncPhoneNumbersResult(numbers=results, without_branch=without_branch, dry_run=dry_run, **counts)


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
