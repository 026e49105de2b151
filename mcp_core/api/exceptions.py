"""DRF errors (malformed JSON, wrong content type) in the MCPResponse shape, never a 500 page."""

from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler


def api_exception_handler(exc, context):
    response = exception_handler(exc, context)
    if response is None:
        return None
    code = {
        exceptions.ParseError: "validation_error",
        exceptions.UnsupportedMediaType: "validation_error",
        exceptions.MethodNotAllowed: "validation_error",
        exceptions.NotAuthenticated: "unauthorized",
        exceptions.AuthenticationFailed: "unauthorized",
        exceptions.PermissionDenied: "forbidden",
        exceptions.NotFound: "not_found",
        exceptions.Throttled: "rate_limited",
    }.get(type(exc), "validation_error")
    detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
    body = {
        "success": False,
        "data": None,
        "error": {"code": code, "message": str(detail), "details": {}},
        "metadata": {},
    }
    return Response(body, status=response.status_code, headers=dict(response.items()))
