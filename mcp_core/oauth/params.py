"""Bounds on the parameters of the OAuth endpoints, checked before django-oauth-toolkit sees
them: a NUL would reach PostgreSQL (which refuses it with an error, not an answer), and a value
longer than its column would fail when the grant is stored, after the person consented."""

from __future__ import annotations

import re

from django.http import HttpRequest, HttpResponse, JsonResponse

from ..limits import string_problem

DEFAULT_MAX = 2048
MAX_CHARS = {
    "client_id": 255,  # the Application column (a metadata document's URL included)
    "code": 255,
    "code_challenge": 128,  # RFC 7636: 43 to 128 characters
    "code_verifier": 128,
    "code_challenge_method": 10,
    "response_type": 64,
    "grant_type": 128,
    "token_type_hint": 64,
    "state": 1024,
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def problem(request: HttpRequest) -> tuple[str, str] | None:
    """(field, what is wrong) for the first unacceptable query or form parameter, or None."""
    sources = [request.GET, request.POST] if request.method == "POST" else [request.GET]
    for source in sources:
        for name, values in source.lists():
            for value in values:
                limit = MAX_CHARS.get(name, DEFAULT_MAX)
                if len(value) > limit:
                    return name, f"longer than {limit} characters"
                found = string_problem(value)
                if found:
                    return name, found
                if _CONTROL.search(value):
                    return name, "contains a control character"
    return None


def refusal(request: HttpRequest, *, page: bool = False) -> HttpResponse | None:
    """A 400 naming the field (JSON for clients, plain text on a person's page), or None."""
    found = problem(request)
    if found is None:
        return None
    field, what = found
    message = f"{field}: {what}"
    if page:
        return HttpResponse(message, status=400, content_type="text/plain; charset=utf-8")
    return JsonResponse(
        {"error": "invalid_request", "error_description": message, "field": field}, status=400
    )
