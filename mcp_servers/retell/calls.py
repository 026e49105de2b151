"""The tenant's calls: listed live from Retell, fetched one by one (local row first),
imported into local Call rows, searched locally, and placed as outbound calls.

Units: see schemas.py (milliseconds, cents).
"""

from __future__ import annotations

import time
from typing import Any

from django.db import DataError, IntegrityError, transaction
from django.db.models import Count, Q, QuerySet

from askpro.models import Call, Company, Customer
from mcp_core.contracts import ErrorCode, MCPError, OperationContext

from .client import MAX_PAGES, CallFilter
from .schemas import (
    CallDetails,
    CreatePhoneCallParams,
    CreatePhoneCallResult,
    ImportCallsResult,
    ListCallsParams,
    ListCallsResult,
    cents_to_amount,
    live_call_details,
    local_call_details,
    ms_to_datetime,
    retell_call,
)
from .tenancy import TenantScope, client_for

FINAL_STATUSES = frozenset({"ended", "error", "not_connected"})
_STATUS = {
    "registered": Call.Status.REGISTERED,
    "ongoing": Call.Status.ONGOING,
    "ended": Call.Status.ENDED,
    "error": Call.Status.ERROR,
    "not_connected": Call.Status.ERROR,
}


def caller_number(call: dict[str, Any]) -> str:
    """The customer's side of the call: the caller inbound, the callee outbound."""
    return (call.get("to_number") if call.get("direction") == "outbound" else call.get("from_number")) or ""


class ImportSkipped(Exception):
    """The call cannot become a local row yet (no start time, not finished)."""


def find_or_create_customer(scope: TenantScope, phone: str) -> Customer | None:
    if not phone:
        return None
    customer = Customer.objects.filter(company=scope.company, phone=phone).order_by("pk").first()
    if customer is None:
        customer = Customer.objects.create(company=scope.company, name=f"Caller {phone}", phone=phone)
    return customer


def import_call(scope: TenantScope, call: dict[str, Any]) -> Call | None:
    """Create the local row for a finished call; None when the call id is already known.

    Runs in its own savepoint: a concurrent import that inserts the same call id first
    makes this one a skip (the unique retell_call_id decides), never a half-written row.
    """
    if call.get("call_status") not in FINAL_STATUSES:
        raise ImportSkipped(f"call is {call.get('call_status')!r}, not finished")
    started = ms_to_datetime(call.get("start_timestamp")) or ms_to_datetime(call.get("end_timestamp"))
    if started is None:
        raise ImportSkipped("call has neither start_timestamp nor end_timestamp")
    analysis = call.get("call_analysis") or {}
    duration_ms = call.get("duration_ms")
    if duration_ms is None and call.get("end_timestamp") and call.get("start_timestamp"):
        duration_ms = int(call["end_timestamp"]) - int(call["start_timestamp"])
    try:
        with transaction.atomic():
            if Call.objects.filter(retell_call_id=call["call_id"]).exists():
                return None
            return Call.objects.create(
                company=scope.company,
                branch=scope.branch_for_call(call),
                customer=find_or_create_customer(scope, caller_number(call)),
                retell_call_id=call["call_id"],
                agent_id=call.get("agent_id") or "",
                from_number=call.get("from_number") or "",
                to_number=call.get("to_number") or "",
                direction=Call.Direction.OUTBOUND
                if call.get("direction") == "outbound"
                else Call.Direction.INBOUND,
                status=_STATUS.get(call.get("call_status"), Call.Status.ERROR),
                disconnection_reason=(call.get("disconnection_reason") or "")[:64],
                call_successful=analysis.get("call_successful"),
                started_at=started,
                ended_at=ms_to_datetime(call.get("end_timestamp")),
                duration_sec=max(0, round((duration_ms or 0) / 1000)),
                cost=cents_to_amount((call.get("call_cost") or {}).get("combined_cost")),
                transcript=call.get("transcript") or "",
                summary=analysis.get("call_summary") or "",
                sentiment=(analysis.get("user_sentiment") or "")[:20],
                # Call has no recording column: the URL travels with Retell's analysis.
                analysis={**analysis, "recording_url": call.get("recording_url")}
                if call.get("recording_url")
                else analysis,
            )
    except IntegrityError:
        return None


# --- live ---
def list_live(scope: TenantScope, ctx: OperationContext, params: ListCallsParams) -> ListCallsResult:
    """One page of the tenant's calls from Retell, each marked when it is imported already."""
    if params.since and params.until and params.since > params.until:
        raise MCPError(
            ErrorCode.VALIDATION_ERROR,
            "until: must not be before since",
            details={"field": "until", "problem": "invalid_value"},
        )
    agents = [scope.require_agent(params.agent_id)] if params.agent_id else scope.agent_ids
    if not agents:
        raise _no_agent("listed")
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
    known = set(
        Call.objects.filter(
            company=scope.company, retell_call_id__in=[c["call_id"] for c in mine]
        ).values_list("retell_call_id", flat=True)
    )
    return ListCallsResult(
        calls=[retell_call(c, c["call_id"] in known) for c in mine],
        count=len(mine),
        has_more=page.has_more,
        pagination_key=page.pagination_key,
        api_generation=page.generation,
    )


def import_recent(scope: TenantScope, ctx: OperationContext, days: int, limit: int) -> ImportCallsResult:
    """Walk Retell's pages of the last `days` (up to `limit` calls of the tenant) and import
    each finished one; known, unfinished and unreadable calls are counted, never fatal."""
    if not scope.agent_ids:
        raise _no_agent("imported")
    client, _ = client_for(scope.company)
    since_ms = int((time.time() - days * 86400) * 1000)
    imported = known = unfinished = processed = 0
    errors: list[str] = []
    key: str | None = None
    generation = client.generation
    for _ in range(MAX_PAGES):
        if processed >= limit:
            break
        page = client.list_calls(
            ctx,
            filters=CallFilter(agent_ids=scope.agent_ids, start_after_ms=since_ms),
            limit=min(200, limit - processed),
            pagination_key=key,
        )
        generation = page.generation
        for call in page.items:
            if processed >= limit:
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


def details(company: Company, ctx: OperationContext, call_id: str) -> CallDetails:
    """A local call (by local id or Retell id), else the tenant's call fetched live; another
    tenant's call is answered exactly like a missing one."""
    wanted = call_id.strip()
    # A local id is a bigint; longer digit strings can only be Retell ids.
    is_local_id = wanted.isdigit() and len(wanted) <= 18
    lookup = Q(retell_call_id=wanted) | (Q(pk=int(wanted)) if is_local_id else Q())
    local = Call.objects.filter(company=company).filter(lookup).select_related("customer", "branch").first()
    if local is not None:
        return local_call_details(local)
    scope = TenantScope(company)
    client, _ = client_for(company)
    missing = MCPError(
        ErrorCode.NOT_FOUND, f"call_id: no call {wanted!r} for this tenant", details={"field": "call_id"}
    )
    try:
        call = client.get_call(ctx, wanted)
    except MCPError as exc:
        if exc.code is ErrorCode.NOT_FOUND:
            raise missing from None
        raise
    if not scope.owns_call(call):
        raise missing  # another tenant's call looks exactly like a missing one
    return live_call_details(call, scope.branch_for_call(call))


def place_call(
    scope: TenantScope, ctx: OperationContext, params: CreatePhoneCallParams
) -> CreatePhoneCallResult:
    """An outbound call from one of the tenant's numbers, by the number's agent or one of the
    tenant's agents named in agent_id."""
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


# --- local ---
def local_calls(company: Company) -> QuerySet[Call]:
    """The tenant's Call rows with what a list entry shows (customer, branch, appointment count)."""
    return (
        Call.objects.filter(company=company)
        .select_related("customer", "branch")
        .annotate(appointment_count=Count("appointments"))
    )


def search_local(company: Company, term: str) -> QuerySet[Call]:
    return local_calls(company).filter(
        Q(from_number__icontains=term)
        | Q(to_number__icontains=term)
        | Q(customer__name__icontains=term)
        | Q(customer__phone__icontains=term)
        | Q(summary__icontains=term)
    )


def _no_agent(what: str) -> MCPError:
    return MCPError(
        ErrorCode.VALIDATION_ERROR,
        f"agent_id: this tenant has no Retell agent configured, so none of its calls can be {what}",
        details={"field": "agent_id", "problem": "missing"},
    )
