"""A test-only registry of realistic operations for the services being built in parallel
(Cal.com, Retell, Stripe, Sentry, queue, webhooks), so that tool search can be judged on a
catalogue of the size and wording the real one will have. Only their declarations matter."""

from __future__ import annotations

from typing import Annotated

import msgspec

from mcp_core.contracts import OperationContext
from mcp_core.health import HealthResult, HealthStatus
from mcp_core.schemas import NoParams, Params, Result
from mcp_core.server import MCPServer, operation

Meta = msgspec.Meta


class Done(Result):
    ok: bool


class BookingParams(Params):
    booking_uid: Annotated[str, Meta(description="Cal.com booking uid")]
    reason: str | None = None


class CreateBookingParams(Params):
    event_type_id: int
    start: str
    attendee_name: str
    attendee_email: str


class RangeParams(Params):
    start: str
    end: str


class CallIdParams(Params):
    call_id: str


class ListCallsParams(Params):
    hours: int = 24
    status: str | None = None


class AgentParams(Params):
    agent_id: str
    prompt: str | None = None


class RefundParams(Params):
    payment_intent_id: Annotated[str, Meta(description="The payment to refund")]
    amount_cents: int | None = None
    reason: str | None = None


class CustomerParams(Params):
    customer_id: str


class IssueParams(Params):
    hours: int = 24
    query: str | None = None


class IssueIdParams(Params):
    issue_id: str


class QueueParams(Params):
    queue: str = "default"


class RetryParams(Params):
    job_id: str


class WebhookParams(Params):
    source: str | None = None
    hours: int = 24


class EventIdParams(Params):
    event_id: int


def op(name, description, params=NoParams, *, scope="read", **flags):
    def run(self, ctx: OperationContext, params) -> Done:
        return Done(ok=True)

    flags.setdefault("read_only", scope == "read")
    return operation(name=name, description=description, params=params, result=Done, scope=scope, **flags)(
        run
    )


class _Healthy(MCPServer):
    def health(self) -> HealthResult:
        return HealthResult(HealthStatus.HEALTHY)


class FakeCalcom(_Healthy):
    name = "calcom"
    description = "Cal.com: event types, availability and bookings."
    list_bookings = op(
        "list_bookings", "List the tenant's Cal.com bookings (appointments) in a date range.", RangeParams
    )
    get_availability = op("get_availability", "Free slots of an event type between two dates.", RangeParams)
    create_booking = op(
        "create_booking",
        "Book an appointment for a caller on an event type.",
        CreateBookingParams,
        scope="write",
    )
    cancel_booking = op(
        "cancel_booking",
        "Cancel a booking by its uid, with an optional reason sent to the attendee.",
        BookingParams,
        scope="write",
        destructive=True,
    )
    reschedule_booking = op(
        "reschedule_booking", "Move a booking to another start time.", BookingParams, scope="write"
    )
    list_event_types = op("list_event_types", "Event types (services) configured in Cal.com for the tenant.")


class FakeRetell(_Healthy):
    name = "retell"
    description = "Retell.ai: the voice agents that answer the phone, and their calls."
    list_calls = op(
        "list_calls", "Recent phone calls handled by the Retell agent, filterable by status.", ListCallsParams
    )
    get_call = op(
        "get_call", "One call with transcript, recording URL, disconnection reason and latency.", CallIdParams
    )
    get_call_errors = op(
        "get_call_errors",
        "Calls that ended in an error in the last hours, grouped by disconnection reason "
        "(agent hangup, dial failed, LLM error), to explain why calls are failing.",
        ListCallsParams,
    )
    list_agents = op("list_agents", "The Retell voice agents with their voice and LLM settings.")
    update_agent_prompt = op(
        "update_agent_prompt", "Change a voice agent's prompt.", AgentParams, scope="write"
    )


class FakeStripe(_Healthy):
    name = "stripe"
    description = "Stripe: the platform's billing of each tenant."
    list_invoices = op("list_invoices", "Invoices of a customer, newest first.", CustomerParams)
    get_customer = op(
        "get_customer", "A Stripe customer with subscription and default payment method.", CustomerParams
    )
    create_refund = op(
        "create_refund",
        "Refund a payment fully or partly; the money goes back to the card.",
        RefundParams,
        scope="admin",
        destructive=True,
        open_world=True,
    )
    list_payments = op("list_payments", "Recent payments (charges) and their status.", CustomerParams)
    cancel_subscription = op(
        "cancel_subscription",
        "Cancel a tenant's subscription at period end.",
        CustomerParams,
        scope="admin",
        destructive=True,
    )


class FakeSentry(_Healthy):
    name = "sentry"
    description = "Sentry: errors and exceptions raised by the platform."
    list_issues = op(
        "list_issues", "Unresolved error issues in the last hours, most frequent first.", IssueParams
    )
    get_issue = op("get_issue", "One issue with its latest event and stack trace.", IssueIdParams)
    resolve_issue = op("resolve_issue", "Mark an issue resolved.", IssueIdParams, scope="write")


class FakeQueue(_Healthy):
    name = "queue"
    description = "Celery queues: depth, failed jobs, retries."
    get_queue_depth = op(
        "get_queue_depth", "How many jobs wait in a queue and how old the oldest is.", QueueParams
    )
    list_failed_jobs = op(
        "list_failed_jobs", "Background jobs that failed, with their exception.", QueueParams
    )
    retry_job = op("retry_job", "Run a failed job again.", RetryParams, scope="write")


class FakeWebhooks(_Healthy):
    name = "webhooks"
    description = "Inbound webhooks from Retell, Cal.com and Stripe."
    list_events = op(
        "list_events", "Webhook events received, by source and processing status.", WebhookParams
    )
    replay_event = op("replay_event", "Process a stored webhook event again.", EventIdParams, scope="write")


FAKE_SERVERS = [
    f"tests.mcp.fake_servers.{cls}"
    for cls in ("FakeCalcom", "FakeRetell", "FakeStripe", "FakeSentry", "FakeQueue", "FakeWebhooks")
]
