"""The DRF API: call an operation, discover operations, read health. Thin: each view builds
an MCPRequest or asks a service, and translates the answer to HTTP."""

from __future__ import annotations

import re
import uuid
from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..api_keys import api_key_authenticate_cached, bearer_token
from ..contracts import ErrorCode, MCPRequest
from ..discovery import services_for
from ..health import run_checks_coalesced
from ..limits import INT64_MAX, shown, string_problem
from ..models import HealthRun
from ..pipeline import route
from ..ratelimit import rate_limit_headers
from ..resilience import with_resilience

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="askpro"'}
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _error(
    code: ErrorCode,
    message: str,
    status: int,
    *,
    details: dict | None = None,
    headers: dict | None = None,
) -> Response:
    return Response(
        {
            "success": False,
            "data": None,
            "error": {"code": str(code), "message": message, "details": details or {}},
            "metadata": {},
        },
        status=status,
        headers=headers,
    )


def _principal(request: Request):
    return api_key_authenticate_cached(bearer_token(request.headers.get("Authorization")))


class CallRequestSerializer(serializers.Serializer):
    service = serializers.CharField(help_text="Server name, e.g. database")
    operation = serializers.CharField(help_text="Operation name, e.g. get_call_stats")
    params = serializers.DictField(
        required=False, help_text="The operation's params (see /api/v1/mcp/services)"
    )
    tenant = serializers.CharField(required=False, help_text="Tenant slug; platform keys only")


MCPResponseSerializer = inline_serializer(
    "MCPResponse",
    {
        "success": serializers.BooleanField(),
        "data": serializers.JSONField(allow_null=True),
        "error": serializers.JSONField(allow_null=True, help_text="{code, message, details}"),
        "metadata": serializers.JSONField(
            help_text="{service, operation, duration_ms, tenant_id, request_id}"
        ),
    },
)


_ENVELOPE_FIELDS = ("service", "operation", "params", "tenant")
_NAME_CHARS = 100  # service, operation and tenant slugs are far shorter; longer is a mistake


def _string_problem(value: str) -> str | None:
    if not value:
        return "must be a non-empty string"
    if len(value) > _NAME_CHARS:
        return f"must be at most {_NAME_CHARS} characters"
    return string_problem(value)


def _body_problem(body: Any) -> tuple[str, str] | None:
    if not isinstance(body, dict):
        return "body", "must be a JSON object"
    for field in ("service", "operation"):
        if field not in body:
            return field, "is required"
        if not isinstance(body[field], str):
            return field, "must be a non-empty string"
        problem = _string_problem(body[field])
        if problem:
            return field, problem
    if "params" in body and not isinstance(body["params"], dict):
        return "params", "must be a JSON object"
    # bool is an int to Python, but `true` is no tenant id (it would select tenant 1).
    if "tenant" in body and (isinstance(body["tenant"], bool) or not isinstance(body["tenant"], str | int)):
        return "tenant", "must be a tenant slug"
    if isinstance(body.get("tenant"), str):
        problem = _string_problem(body["tenant"])
        if problem:
            return "tenant", problem
    if isinstance(body.get("tenant"), int) and not 1 <= body["tenant"] <= INT64_MAX:
        return "tenant", "must be a tenant slug or a tenant id between 1 and 2^63 - 1"
    unknown = set(body) - set(_ENVELOPE_FIELDS)
    if unknown:
        return shown(sorted(unknown)[0]), "is not a known field (use service, operation, params, tenant)"
    return None


def _name_or_blank(body: Any, field: str) -> str:
    """An envelope name that is safe to audit and echo, else "" (the request is refused anyway)."""
    value = body.get(field) if isinstance(body, dict) else None
    return value if isinstance(value, str) and _string_problem(value) is None else ""


class CallView(APIView):
    @extend_schema(
        operation_id="mcp_call",
        summary="Call one MCP operation through the orchestrator",
        request=CallRequestSerializer,
        responses={
            code: MCPResponseSerializer for code in (200, 400, 401, 403, 404, 409, 429, 502, 503, 504)
        },
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)],
        examples=[
            OpenApiExample(
                "call stats",
                value={"service": "database", "operation": "get_call_stats", "params": {"days": 7}},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        body = request.data
        problem = _body_problem(body)
        principal = _principal(request)
        if principal is None:
            # Through the pipeline anyway, so that refused attempts are audited like any call.
            response = route(
                MCPRequest(
                    service=_name_or_blank(body, "service"),
                    operation=_name_or_blank(body, "operation"),
                    params={},
                    principal=None,
                    transport="api",
                )
            )
            return Response(response.to_dict(), status=401, headers=_CHALLENGE)
        if problem:
            field, message = problem
            return _error(ErrorCode.VALIDATION_ERROR, f"{field}: {message}", 400, details={"field": field})
        idempotency_key = request.headers.get("Idempotency-Key")
        if idempotency_key is not None and not (1 <= len(idempotency_key) <= 255):
            return _error(
                ErrorCode.VALIDATION_ERROR,
                "Idempotency-Key: must be 1 to 255 characters",
                400,
                details={"field": "Idempotency-Key"},
            )
        request_id = request.headers.get("X-Request-ID") or None
        # It is stored in the audit row (64 chars): a value that does not fit would lose the row.
        if request_id is not None and not _REQUEST_ID.fullmatch(request_id):
            return _error(
                ErrorCode.VALIDATION_ERROR,
                "X-Request-ID: must be 1 to 64 letters, digits, '.', '_' or '-'",
                400,
                details={"field": "X-Request-ID"},
            )
        response = route(
            MCPRequest(
                service=body["service"],
                operation=body["operation"],
                params=body.get("params") or {},
                principal=principal,
                tenant=body.get("tenant"),
                request_id=request_id or uuid.uuid4().hex,
                idempotency_key=idempotency_key,
                transport="api",
            )
        )
        headers = {}
        retry_after = (response.error or {}).get("details", {}).get("retry_after")
        if retry_after is not None:
            headers["Retry-After"] = str(max(1, int(-(-float(retry_after) // 1))))
        headers.update(rate_limit_headers(response.metadata.get("rate_limit")))
        return Response(response.to_dict(), status=response.http_status, headers=headers)


class ServicesView(APIView):
    @extend_schema(
        operation_id="mcp_services",
        summary="Every server and operation this key may use, with JSON Schemas",
        responses={200: inline_serializer("Services", {"services": serializers.JSONField()})},
    )
    def get(self, request: Request) -> Response:
        principal = _principal(request)
        if principal is None:
            return _error(
                ErrorCode.UNAUTHORIZED,
                "A valid API key is required (Authorization: Bearer <key>)",
                401,
                headers=_CHALLENGE,
            )
        return Response({"services": services_for(principal)})


class HealthView(APIView):
    @extend_schema(
        operation_id="mcp_health",
        summary="Aggregate and per-service health",
        description=(
            "Runs every check, coalesced across callers: while a run is under way, or for "
            "MCP_HEALTH_REUSE_SECONDS after one, the stored run is returned (source: stored)."
        ),
        parameters=[
            OpenApiParameter(
                "timeout",
                float,
                required=False,
                description="Seconds per check if this call runs them (default 5)",
            )
        ],
        responses={
            200: inline_serializer(
                "Health",
                {
                    "status": serializers.CharField(),
                    "checked_at": serializers.DateTimeField(allow_null=True),
                    "age_seconds": serializers.FloatField(allow_null=True),
                    "source": serializers.CharField(help_text="live: this call ran the checks; stored"),
                    "run_in_progress": serializers.BooleanField(),
                    "services": serializers.JSONField(),
                    "platform": serializers.JSONField(help_text="database, cache, broker"),
                    "resilience": serializers.JSONField(help_text="limiter/breaker state store, breakers"),
                    "pools": serializers.JSONField(help_text="database, HTTP and Redis connection pools"),
                },
            )
        },
    )
    def get(self, request: Request) -> Response:
        principal = _principal(request)
        if principal is None:
            return _error(
                ErrorCode.UNAUTHORIZED,
                "A valid API key is required (Authorization: Bearer <key>)",
                401,
                headers=_CHALLENGE,
            )
        raw_timeout = request.query_params.get("timeout", "5")
        try:
            timeout = float(raw_timeout)
            if not 0.1 <= timeout <= 30:
                raise ValueError
        except ValueError:
            return _error(
                ErrorCode.VALIDATION_ERROR,
                "timeout: must be a number of seconds between 0.1 and 30",
                400,
                details={"field": "timeout"},
            )
        snapshot = run_checks_coalesced(trigger=HealthRun.Trigger.API, timeout=timeout)
        report = with_resilience(snapshot.report())
        return Response(report)
