"""The request and response every caller and every server speaks (see DESIGN.md, "One call, one path")."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from askpro.models import Company


class ErrorCode(StrEnum):
    VALIDATION_ERROR = "validation_error"
    NOT_FOUND = "not_found"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    RATE_LIMITED = "rate_limited"
    CIRCUIT_OPEN = "circuit_open"
    TIMEOUT = "timeout"
    UPSTREAM_ERROR = "upstream_error"
    NOT_CONFIGURED = "not_configured"
    CONFLICT = "conflict"
    INTERNAL_ERROR = "internal_error"


# The HTTP status each transport uses for an error code.
HTTP_STATUS_FOR_ERROR: dict[ErrorCode, int] = {
    ErrorCode.VALIDATION_ERROR: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.UPSTREAM_ERROR: 502,
    ErrorCode.NOT_CONFIGURED: 503,
    ErrorCode.CIRCUIT_OPEN: 503,
    ErrorCode.TIMEOUT: 504,
}


class OutcomeClass(StrEnum):
    """What an answer says about the service, for counting (rollups, pages, the engine).

    - success: the operation did its work.
    - caller_error: the caller's request was refused or cannot be served as asked (bad or
      missing key, missing scope, bad params, unknown record, a conflict, over its rate limit).
      The service is fine.
    - not_configured: the service has no credentials (for this tenant or at all). A fact to
      fix in configuration, not a fault of the service.
    - service_failure: the service failed to answer (upstream error, timeout, our own bug) or
      was refused because its breaker is open after such failures.
    """

    SUCCESS = "success"
    CALLER_ERROR = "caller_error"
    NOT_CONFIGURED = "not_configured"
    SERVICE_FAILURE = "service_failure"


# Every error code in exactly one class (a test keeps this table complete).
OUTCOME_CLASS_FOR_ERROR: dict[ErrorCode, OutcomeClass] = {
    ErrorCode.VALIDATION_ERROR: OutcomeClass.CALLER_ERROR,
    ErrorCode.NOT_FOUND: OutcomeClass.CALLER_ERROR,
    ErrorCode.UNAUTHORIZED: OutcomeClass.CALLER_ERROR,
    ErrorCode.FORBIDDEN: OutcomeClass.CALLER_ERROR,
    ErrorCode.CONFLICT: OutcomeClass.CALLER_ERROR,
    # A tenant over its own limit is not the service failing.
    ErrorCode.RATE_LIMITED: OutcomeClass.CALLER_ERROR,
    ErrorCode.NOT_CONFIGURED: OutcomeClass.NOT_CONFIGURED,
    ErrorCode.UPSTREAM_ERROR: OutcomeClass.SERVICE_FAILURE,
    ErrorCode.TIMEOUT: OutcomeClass.SERVICE_FAILURE,
    ErrorCode.INTERNAL_ERROR: OutcomeClass.SERVICE_FAILURE,
    # The caller was refused because the service has been failing: the failure is the service's.
    ErrorCode.CIRCUIT_OPEN: OutcomeClass.SERVICE_FAILURE,
}


def outcome_class(error_code: ErrorCode | str | None) -> OutcomeClass:
    """The class of an answer from its error code (None or "" for a success).

    The one classification every count uses. A code this version does not know counts as a
    service failure: an unexplained error is never hidden among the caller's mistakes.
    """
    if not error_code:
        return OutcomeClass.SUCCESS
    try:
        return OUTCOME_CLASS_FOR_ERROR[ErrorCode(error_code)]
    except ValueError:
        return OutcomeClass.SERVICE_FAILURE


def codes_of(kind: OutcomeClass) -> frozenset[ErrorCode]:
    return frozenset(code for code, found in OUTCOME_CLASS_FOR_ERROR.items() if found is kind)


CALLER_ERROR_CODES = codes_of(OutcomeClass.CALLER_ERROR)
SERVICE_FAILURE_CODES = codes_of(OutcomeClass.SERVICE_FAILURE)
# The failures that feed a circuit breaker: the service's own. circuit_open is a breaker's
# answer, never evidence against the (possibly other) service that passed it on.
BREAKER_FAILURE_CODES = SERVICE_FAILURE_CODES - {ErrorCode.CIRCUIT_OPEN}


class MCPError(Exception):
    """Raised by operations (and the pipeline) for a failure the caller should see.

    The message is shown to the caller (an operator or a model): make it say what to do,
    and never put a secret in it.
    """

    def __init__(
        self,
        code: ErrorCode | str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)
        self.message = message
        self.details = dict(details or {})
        if retry_after is not None:
            self.details["retry_after"] = retry_after


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an API key, a signed-in operator, or the system itself (tasks).

    `tenant_id` is the tenant the principal is bound to; None means platform-wide.
    `tenant_ids`, for a signed-in operator, are the tenants they may act for at all (None:
    every tenant); the pipeline refuses a call for any other (see mcp_core.operators).
    """

    kind: str  # "api_key" | "user" | "system"
    name: str
    scopes: frozenset[str]
    tenant_id: int | None = None
    api_key_id: int | None = None
    user_id: int | None = None
    tenant_ids: frozenset[int] | None = None

    @property
    def is_platform(self) -> bool:
        return self.tenant_id is None and self.tenant_ids is None

    def has_scope(self, needed: str) -> bool:
        """True if a scope grants `service:level`. Levels nest: admin ⊃ write ⊃ read;
        `service:*` grants every level of a service, `*:level` that level everywhere."""
        if "*" in self.scopes:
            return True
        service, _, level = needed.partition(":")
        levels = {
            "read": ("read", "write", "admin", "*"),
            "write": ("write", "admin", "*"),
            "admin": ("admin", "*"),
        }
        return any(
            f"{svc}:{lvl}" in self.scopes for svc in (service, "*") for lvl in levels.get(level, (level,))
        )


SYSTEM_PRINCIPAL = Principal(kind="system", name="system", scopes=frozenset({"*"}))


@dataclass(slots=True)
class MCPRequest:
    """One call of one operation. `tenant` is the tenant the caller asked for (slug or id);
    the pipeline decides the effective tenant from it and the principal."""

    service: str
    operation: str
    params: dict[str, Any]
    principal: Principal | None
    tenant: str | int | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    idempotency_key: str | None = None
    transport: str = "internal"


@dataclass(slots=True)
class MCPResponse:
    success: bool
    data: Any = None
    error: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def error_code(self) -> ErrorCode | None:
        return ErrorCode(self.error["code"]) if self.error else None

    @property
    def http_status(self) -> int:
        if self.success:
            return 200
        return HTTP_STATUS_FOR_ERROR.get(self.error_code, 500)

    def to_dict(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "data": self.data,
            "error": self.error,
            "metadata": self.metadata,
        }


@dataclass(slots=True)
class OperationContext:
    """What an operation receives besides its params."""

    request: MCPRequest
    principal: Principal
    tenant: Company | None
    deadline: float  # time.monotonic() value after which the call has timed out
    # Notes that guards add for the response (e.g. "rate_limit"); merged into MCPResponse.metadata.
    metadata: dict[str, Any] = field(default_factory=dict)
    # The failure of the execution, set before guards' exit() so they can judge it (a breaker
    # ignores an upstream that rejected one tenant's credentials).
    error: MCPError | None = None
    # How many calls this one counts as against the tenant's rate limit (Operation.weight).
    weight: int = 1

    def remaining(self) -> float:
        import time

        return max(0.0, self.deadline - time.monotonic())

    @property
    def request_id(self) -> str:
        return self.request.request_id

    def require_tenant(self) -> Company:
        if self.tenant is None:
            raise MCPError(
                ErrorCode.VALIDATION_ERROR,
                "This operation needs a tenant",
                details={"field": "tenant"},
            )
        return self.tenant
