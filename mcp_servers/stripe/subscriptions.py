"""Subscriptions of one tenant: which one a call means, how an action becomes Stripe's
parameters, and keeping Company.billing_status in step."""

from __future__ import annotations

from typing import Any

from askpro.models import Company
from mcp_core.contracts import ErrorCode, MCPError

from .schemas import UpdateSubscriptionParams, UpdateSubscriptionResult, subscription_info
from .tenancy import Tenant, callers_idempotency_key


def find_subscription(t: Tenant, subscription_id: str | None) -> dict[str, Any]:
    """The named subscription (the tenant's own only); without an id the company's, else the
    customer's newest."""
    if subscription_id is None:
        subscription_id = t.company.stripe_subscription_id or None
    if subscription_id is not None:
        return t.owned("subscription", "subscription_id", subscription_id, t.v1.subscriptions.retrieve)
    listed = t.fetch(
        "list subscriptions", t.v1.subscriptions.list, params={"customer": t.customer_id(), "limit": 1}
    )
    if not listed["data"]:
        raise MCPError(
            ErrorCode.NOT_FOUND,
            "subscription_id: this tenant has no subscription",
            details={"field": "subscription_id"},
        )
    return listed["data"][0]


def check_price_id(params: UpdateSubscriptionParams) -> None:
    """price_id goes with change_plan and with nothing else."""
    if (params.action == "change_plan") != (params.price_id is not None):
        message = (
            "price_id: is required for change_plan"
            if params.action == "change_plan"
            else f"price_id: only used by change_plan, not {params.action}"
        )
        raise MCPError(ErrorCode.VALIDATION_ERROR, message, details={"field": "price_id"})


def update_subscription(t: Tenant, params: UpdateSubscriptionParams) -> UpdateSubscriptionResult:
    """Carry out one action: cancel (now or at the period end), pause, resume, change_plan."""
    sub = find_subscription(t, params.subscription_id)
    if sub.get("status") == "canceled":
        raise MCPError(
            ErrorCode.CONFLICT,
            f"subscription_id: {sub['id']} is already canceled",
            details={"field": "subscription_id"},
        )
    caller_key = callers_idempotency_key(t.ctx)
    options = {"idempotency_key": t.key("subscription", caller_key)} if caller_key else {}
    if params.action == "cancel" and not params.at_period_end:
        sub = t.fetch("cancel subscription", t.v1.subscriptions.cancel, sub["id"])
    else:
        update = _update_params(params, sub)
        try:
            sub = t.fetch(
                "update subscription", t.v1.subscriptions.update, sub["id"], params=update, options=options
            )
        except MCPError as exc:
            # Stripe names items[0][price]; the caller gave price_id.
            if params.action == "change_plan" and exc.details.get("field", "").startswith("items"):
                exc.message = exc.message.replace(exc.details["field"], "price_id", 1)
                exc.details["field"] = "price_id"
            raise
    _sync_billing_status(t.company, sub)
    return UpdateSubscriptionResult(action=params.action, subscription=subscription_info(sub))


def _update_params(params: UpdateSubscriptionParams, sub: dict[str, Any]) -> dict[str, Any]:
    if params.action == "cancel":
        return {"cancel_at_period_end": True}
    if params.action == "pause":
        return {"pause_collection": {"behavior": "void"}}
    if params.action == "resume":
        return {"pause_collection": "", "cancel_at_period_end": False}
    items = (sub.get("items") or {}).get("data") or []
    if not items:
        raise MCPError(ErrorCode.CONFLICT, "subscription_id: the subscription has no item to change")
    return {
        "items": [{"id": items[0]["id"], "price": params.price_id}],
        "proration_behavior": params.proration_behavior,
    }


def _sync_billing_status(company: Company, sub: dict[str, Any]) -> None:
    """Keep Company.billing_status in step when the tenant's own subscription changed."""
    if sub["id"] != company.stripe_subscription_id:
        return
    status = sub.get("status")
    if status in Company.BillingStatus.values:
        Company.objects.filter(pk=company.pk).update(billing_status=status)
