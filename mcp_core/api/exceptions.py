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
    # Name what was wrong, like every other validation_error: the body or its content type.
    message, details = str(detail), {}
    if isinstance(exc, exceptions.ParseError):
        message, details = f"body: {detail}", {"field": "body", "problem": "invalid"}
    elif isinstance(exc, exceptions.UnsupportedMediaType):
        message, details = f"Content-Type: {detail}", {"field": "Content-Type", "problem": "invalid"}
    body = {
        "success": False,
        "data": None,
        "error": {"code": code, "message": message, "details": details},
        "metadata": {},
    }
    return Response(body, status=response.status_code, headers=dict(response.items()))
