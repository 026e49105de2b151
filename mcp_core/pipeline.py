"""The one path every call takes: route(MCPRequest) -> MCPResponse.

resolve -> authorize scope -> validate params -> bind tenant -> guards (rate limit, breaker)
-> execute under the deadline -> audit + metrics, once.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import msgspec
from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils.module_loading import import_string

from askpro.models import Company

from . import live, logs, tracing
from .audit import audit_fields
from .contracts import (
    BREAKER_FAILURE_CODES,
    ErrorCode,
    MCPError,
    MCPRequest,
    MCPResponse,
    OperationContext,
    OutcomeClass,
    Principal,
    outcome_class,
)
from .limits import INT64_MAX, string_problem
from .prometheus import observe_call
from .recorder import get_recorder
from .registry import get_registry
from .schemas import describe_validation_error, to_builtins
from .server import Operation

logger = logging.getLogger(__name__)
# How a refusal names the caller: "This user lacks ...", "This token lacks ...".
_CALLER_NOUN = {"user": "user", "oauth": "token"}


class Guard:
    """A step that runs around every execution (rate limiter, circuit breaker, ...).

    `enter` raises MCPError to refuse the call and returns a token; `exit` always runs after
    an entered call with the outcome, so that counters and slots are released exactly once.
    """

    def enter(self, op: Operation, ctx: OperationContext) -> Any:
        return None

    def exit(
        self,
        op: Operation,
        ctx: OperationContext,
        token: Any,
        error_code: ErrorCode | None,
        duration_s: float,
    ) -> None:
        return None


_guards: list[Guard] | None = None


def get_guards() -> list[Guard]:
    global _guards
    if _guards is None:
        _guards = [import_string(path)() for path in settings.MCP_PIPELINE_GUARDS]
    return _guards


def reset_guards_for_tests() -> None:
    global _guards
    _guards = None


def _check_tenant_value(requested: Any) -> None:
    """A named tenant is a slug or an id, before any query sees it (PostgreSQL refuses NUL, an
    id beyond bigint cannot match, a lone surrogate cannot even be sent)."""
    if requested in (None, ""):
        return
    if isinstance(requested, bool) or not isinstance(requested, str | int):
        problem = "must be a tenant slug or id"
    elif isinstance(requested, int):
        problem = None if 1 <= requested <= INT64_MAX else "must be a tenant id between 1 and 2^63 - 1"
    elif len(requested) > 100:
        problem = "must be at most 100 characters"
    else:
        problem = string_problem(requested)
    if problem:
        raise MCPError(
            ErrorCode.VALIDATION_ERROR,
            f"tenant: {problem}",
            details={"field": "tenant", "problem": "invalid_value"},
        )


def _resolve_tenant(op: Operation, request: MCPRequest, principal: Principal) -> Company | None:
    """The effective tenant. A tenant key's own tenant always wins; a tenant it names is never trusted."""
    requested = request.tenant
    _check_tenant_value(requested)
    if principal.tenant_id is not None:
        # Fetched on every call, never cached with the principal: the MCP endpoint and stdio
        # keep principals alive, and a deactivated tenant must stop at once.
        own = Company.objects.filter(pk=principal.tenant_id).first()
        if own is None or not own.is_active:
            raise MCPError(ErrorCode.FORBIDDEN, "The key's tenant is inactive")
        if requested not in (None, "") and str(requested) not in {str(own.pk), own.slug}:
            raise MCPError(
                ErrorCode.FORBIDDEN,
                "This key is bound to its own tenant and cannot act for another one",
                details={"field": "tenant"},
            )
        return own if op.tenant_scoped else None
    if not op.tenant_scoped:
        return None
    if requested in (None, ""):
        raise MCPError(
            ErrorCode.VALIDATION_ERROR,
            "tenant: is required for this operation with a platform key (give the tenant's slug)",
            details={"field": "tenant", "problem": "missing"},
        )
    lookup = (
        {"pk": requested} if isinstance(requested, int) or str(requested).isdigit() else {"slug": requested}
    )
    company = Company.objects.filter(**lookup).first()
    if company is None:
        raise MCPError(ErrorCode.NOT_FOUND, f"tenant: no tenant {requested!r}", details={"field": "tenant"})
    if not company.is_active:
        raise MCPError(
            ErrorCode.FORBIDDEN,
            f"tenant: {company.slug!r} is inactive",
            details={"field": "tenant"},
        )
    return company


def _check_operator_tenant(request: MCPRequest, principal: Principal) -> None:
    """A signed-in operator limited to some tenants acts for no other, whatever was posted."""
    allowed = principal.tenant_ids or frozenset()
    requested = request.tenant
    if principal.tenant_id is not None and principal.tenant_id not in allowed:
        raise MCPError(ErrorCode.FORBIDDEN, "You may not act for this tenant", details={"field": "tenant"})
    if requested in (None, ""):
        return
    text = str(requested)
    lookup = {"pk": int(text)} if text.isdecimal() else {"slug": text}
    company_id = Company.objects.filter(**lookup).values_list("pk", flat=True).first()
    if company_id is None or company_id not in allowed:
        # The same answer whether the tenant exists or not: no probing for other tenants.
        raise MCPError(
            ErrorCode.FORBIDDEN,
            f"tenant: you may not act for tenant {text!r}",
            details={"field": "tenant"},
        )


def _refuse_tenant(op: Operation, request: MCPRequest, principal: Principal, tenant: Company) -> None:
    """An operation limited to some tenants (a federated server's allow-list). A tenant key
    never learns it exists: the same answer as an unknown operation; a platform key or an
    operator is told which tenant may not use it."""
    if principal.tenant_id is not None and principal.tenant_ids is None:
        raise MCPError(
            ErrorCode.NOT_FOUND,
            f"No operation {request.operation!r} on service {request.service!r}",
            details={"service": request.service, "operation": request.operation},
        )
    raise MCPError(
        ErrorCode.FORBIDDEN,
        f"tenant: {tenant.slug!r} may not use {op.tool_name}",
        details={"field": "tenant"},
    )


def _execute(op: Operation, ctx: OperationContext, params: Any) -> Any:
    server = get_registry().get_server(op.service)
    if op.annotations.open_world:
        # Upstream calls manage their own transactions: never hold one open across the network.
        result = server.call(op, ctx, params)
    elif op.annotations.read_only and not transaction.get_connection().in_atomic_block:
        # Nothing to roll back and no outer transaction to protect: a savepoint would only
        # cost two round trips (BEGIN/COMMIT) per call.
        result = server.call(op, ctx, params)
    else:
        # A savepoint: a failing operation leaves nothing half-written, and the connection
        # stays usable for the audit row that follows.
        with transaction.atomic():
            result = server.call(op, ctx, params)
    if not isinstance(result, op.result):
        raise TypeError(f"{op.service}.{op.name} returned {type(result).__name__}, not {op.result.__name__}")
    return to_builtins(result)


def route(request: MCPRequest) -> MCPResponse:
    """Run one call through the pipeline. Never raises: every failure is an MCPResponse."""
    # Every log line written during the call names it (mcp_core/logs.py).
    token = logs.bind(
        request_id=request.request_id, service=request.service, operation=request.operation, tenant=None
    )
    try:
        if tracing.tracer is None:  # tracing off: no span, nothing of OpenTelemetry touched
            return _route(request)
        return _traced_route(request, tracing.tracer)
    finally:
        logs.unbind(token)


def _traced_route(request: MCPRequest, tracer: Any) -> MCPResponse:
    """_route() inside a span of its own: the child of the HTTP request's or the task's span,
    the parent of the call's SQL statements and upstream requests; its trace id goes into the
    audit row and the log lines written meanwhile."""
    from opentelemetry.trace import SpanKind, Status, StatusCode

    known = get_registry().get_operation(request.service, request.operation) is not None
    # Made-up names stay out of the span's name (backends group by it) but not its attributes.
    name = f"route {request.service}.{request.operation}" if known else "route _unknown"
    with tracer.start_as_current_span(name, kind=SpanKind.INTERNAL, record_exception=False) as span:
        response = _route(request)
        if span.is_recording():
            code = response.error["code"] if response.error else None
            kind = outcome_class(code)
            bound = logs.current()  # the tenant's slug, once the pipeline has resolved it
            span.set_attributes(
                {
                    "askpro.service": bound.get("service") or "",
                    "askpro.operation": bound.get("operation") or "",
                    "askpro.transport": request.transport,
                    "askpro.request_id": bound.get("request_id") or "",
                    "askpro.outcome": str(kind),
                }
            )
            if bound.get("tenant"):
                span.set_attribute("askpro.tenant", bound["tenant"])
            if code:
                span.set_attribute("askpro.error_code", code)
            if kind is OutcomeClass.SERVICE_FAILURE:
                span.set_status(Status(StatusCode.ERROR, code))
        return response


def _route(request: MCPRequest) -> MCPResponse:
    started = time.perf_counter()
    principal = request.principal
    op: Operation | None = None
    tenant: Company | None = None
    ctx: OperationContext | None = None
    data: Any = None
    error: MCPError | None = None
    try:
        if principal is None:
            raise MCPError(
                ErrorCode.UNAUTHORIZED, "A valid API key is required (Authorization: Bearer <key>)"
            )
        if principal.tenant_ids is not None:
            _check_operator_tenant(request, principal)
        op = get_registry().get_operation(request.service, request.operation)
        if op is None:
            raise MCPError(
                ErrorCode.NOT_FOUND,
                f"No operation {request.operation!r} on service {request.service!r}",
                details={"service": request.service, "operation": request.operation},
            )
        if not principal.has_scope(op.scope):
            raise MCPError(
                ErrorCode.FORBIDDEN,
                f"This {_CALLER_NOUN.get(principal.kind, 'key')} lacks the scope {op.scope!r}",
                details={"required_scope": op.scope},
            )
        if op.platform_only and not principal.is_platform:
            raise MCPError(ErrorCode.FORBIDDEN, f"{op.tool_name} is available to platform keys only")
        try:
            params = op.decode(request.params)
        except msgspec.ValidationError as exc:
            detail = describe_validation_error(exc)
            raise MCPError(ErrorCode.VALIDATION_ERROR, detail["message"], details=detail) from None
        tenant = _resolve_tenant(op, request, principal)
        if tenant is not None and not op.available_to(tenant.pk):
            _refuse_tenant(op, request, principal, tenant)
        if tenant is not None:
            logs.bind(tenant=tenant.slug)  # undone with the rest when route() returns
        timeout = op.timeout or settings.MCP_DEFAULT_TIMEOUT
        ctx = OperationContext(
            request=request, principal=principal, tenant=tenant, deadline=time.monotonic() + timeout
        )
        if op.weight is not None:
            ctx.weight = max(1, op.weight(params))
        data = _run_guarded(op, ctx, params)
    except MCPError as exc:
        error = exc
    except Exception:
        logger.exception(
            "internal error in %s.%s (request %s)",
            request.service,
            request.operation,
            request.request_id,
        )
        error = MCPError(ErrorCode.INTERNAL_ERROR, f"Internal error; quote request id {request.request_id}")
    duration_ms = (time.perf_counter() - started) * 1000
    _record(request, op, principal, tenant, error, duration_ms)
    metadata = {
        "service": request.service,
        "operation": request.operation,
        "duration_ms": round(duration_ms, 2),
        "tenant_id": tenant.pk if tenant else None,
        "request_id": request.request_id,
    }
    if ctx is not None:
        metadata.update(ctx.metadata)  # guards' notes, e.g. the rate limiter's state
    if error is not None:
        return MCPResponse(
            success=False,
            error={"code": str(error.code), "message": error.message, "details": error.details},
            metadata=metadata,
        )
    return MCPResponse(success=True, data=data, metadata=metadata)


def _run_guarded(op: Operation, ctx: OperationContext, params: Any) -> Any:
    entered: list[tuple[Guard, Any]] = []
    started = time.perf_counter()
    error_code: ErrorCode | None = None
    try:
        for guard in get_guards():
            entered.append((guard, guard.enter(op, ctx)))
        try:
            result = _execute(op, ctx, params)
        except DatabaseError as exc:
            if (
                "statement timeout" in str(exc)
                or "canceling statement" in str(exc)
                or "interrupted" in str(exc)
            ):
                raise MCPError(
                    ErrorCode.TIMEOUT, f"{op.tool_name} ran past its deadline and was stopped"
                ) from None
            raise
        if op.annotations.read_only and time.monotonic() > ctx.deadline:
            raise MCPError(ErrorCode.TIMEOUT, f"{op.tool_name} ran past its deadline")
        return result
    except MCPError as exc:
        error_code = exc.code
        ctx.error = exc
        raise
    except Exception:
        error_code = ErrorCode.INTERNAL_ERROR
        raise
    finally:
        duration_s = time.perf_counter() - started
        for guard, token in reversed(entered):
            try:
                guard.exit(op, ctx, token, error_code, duration_s)
            except Exception:
                logger.exception("guard %s failed on exit", type(guard).__name__)


def _record(
    request: MCPRequest,
    op: Operation | None,
    principal: Principal | None,
    tenant: Company | None,
    error: MCPError | None,
    duration_ms: float,
) -> None:
    """Audit and metrics, exactly once per call. A recording failure is logged, never raised:
    the caller's answer must not depend on the bookkeeping."""
    known = op or get_registry().get_operation(request.service, request.operation)
    try:
        observe_call(
            service=known.service if known else None,
            operation=known.name if known else None,
            transport=request.transport,
            error_code=error.code if error else None,
            duration_s=duration_ms / 1000,
        )
    except Exception:
        logger.exception("could not count request %s for /metrics", request.request_id)
    try:
        audit = audit_fields(
            request_id=request.request_id,
            transport=request.transport,
            principal_name=principal.name if principal else "anonymous",
            api_key_id=principal.api_key_id if principal else None,
            user_id=principal.user_id if principal else None,
            tenant_id=tenant.pk if tenant else (principal.tenant_id if principal else None),
            service=request.service,
            operation=request.operation,
            params=request.params,
            error_code=str(error.code) if error else None,
            error_message=error.message if error else "",
            duration_ms=duration_ms,
            idempotency_key=request.idempotency_key,
            trace_id=logs.current_trace_id() if tracing.tracer is not None else None,
        )
        # Refused before resolution (no valid key): still counted against the operation it
        # named, if that exists; made-up names never create rollup rows.
        op = known
        metric = None
        if op is not None:
            metric_tenant = tenant.pk if tenant else None
            if metric_tenant is None and op.tenant_scoped and principal is not None:
                # Refused before its tenant was resolved: a tenant key can only ever act for its
                # own tenant, so the refusal belongs to that tenant's figures.
                metric_tenant = principal.tenant_id
            metric = {
                "service": op.service,
                "operation": op.name,
                "tenant_id": metric_tenant,
                "duration_ms": duration_ms,
                # metrics.class_counts decides which count a failure adds to.
                "error_code": error.code if error else None,
            }
        recorder = get_recorder()
        batched = recorder.is_batched(request.transport, read_only=op is None or op.annotations.read_only)
        recorder.record(audit, metric, batched=batched)
    except Exception:
        logger.exception("could not record audit/metrics for request %s", request.request_id)
    if error is not None and known is not None and error.code in BREAKER_FAILURE_CODES:
        # The upstream failed (not the caller, not an open breaker): counted across processes
        # for the live error-spike event. Never raises.
        live.service_failed(known.service)


def call_operation(
    service: str,
    operation: str,
    params: dict[str, Any] | None = None,
    *,
    principal: Principal,
    tenant: str | int | None = None,
    idempotency_key: str | None = None,
    transport: str = "internal",
) -> MCPResponse:
    """Convenience for in-process callers (tasks, the console, other servers via the orchestrator)."""
    return route(
        MCPRequest(
            service=service,
            operation=operation,
            params=params or {},
            principal=principal,
            tenant=tenant,
            idempotency_key=idempotency_key,
            transport=transport,
        )
    )


def call_for_tenant(
    service: str,
    operation: str,
    params: dict[str, Any] | None = None,
    *,
    tenant_id: int,
    caller: str,
    idempotency_key: str | None = None,
) -> MCPResponse:
    """An internal workflow's call for one tenant (e.g. the reminders sending a message).

    The caller is a system principal bound to that tenant with the service's write scope only:
    the pipeline treats it like a tenant key (it can act for no other tenant, and its
    validation, rate limit, breaker and audit apply unchanged); the audit names it
    `system:<caller>`. Workflows send through this, never by calling a server's code."""
    principal = Principal(
        kind="system", name=f"system:{caller}", scopes=frozenset({f"{service}:write"}), tenant_id=tenant_id
    )
    return call_operation(
        service,
        operation,
        params,
        principal=principal,
        idempotency_key=idempotency_key,
        transport="internal",
    )
