"""One URL per operation: `POST /api/v1/mcp/<service>/<operation>` with the operation's params
as the JSON body and `?tenant=` for platform keys.

It is the /call endpoint with service and operation taken from the path: the same checks,
the same pipeline (route()), the same answers, statuses and headers. It exists so that the
OpenAPI schema can show each operation as its own path with its params and result schemas
(mcp_core.api.openapi), which a Swagger user can fill in and send as it stands.
"""

from __future__ import annotations

from typing import Any

from django.http import QueryDict
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from ..contracts import ErrorCode
from .views import CallView, _error

_QUERY_PARAMS = ("tenant",)


class _CallBody:
    """The request as /call would see it: `data` is the call's envelope, the rest (headers,
    the key) is the real request's."""

    def __init__(self, request: Request, body: dict[str, Any]) -> None:
        self._request = request
        self.data = body

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


class OperationView(CallView):
    @extend_schema(exclude=True)  # documented once per operation by mcp_core.api.openapi
    def post(self, request: Request, service: str, operation: str) -> Response:
        for name in request.query_params:
            if name not in _QUERY_PARAMS:
                return _error(
                    ErrorCode.VALIDATION_ERROR,
                    f"{name}: is not a known query parameter (use tenant)",
                    400,
                    details={"field": name},
                )
        tenants = request.query_params.getlist("tenant")
        if len(tenants) > 1:
            return _error(
                ErrorCode.VALIDATION_ERROR, "tenant: give it once", 400, details={"field": "tenant"}
            )
        data = request.data
        if isinstance(data, QueryDict):
            # No body is no params; a form-encoded body is not a JSON object (refused as such).
            data = {} if not data else None
        body: dict[str, Any] = {"service": service, "operation": operation, "params": data}
        if tenants:
            body["tenant"] = tenants[0]
        return super().post(_CallBody(request, body))
