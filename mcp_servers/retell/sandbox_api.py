"""The front door of every Retell sandbox route: Bearer keys, Retell's error body
`{"status": <code>, "message": ...}`, 429 with the retry headers its SDK honours, JSON
bodies, and the cursor envelope of the current list generation."""

from __future__ import annotations

import base64
import json
from typing import Any

from mcp_core.sandbox import SandboxRequest, SandboxResponse

from .client import MAX_PAGE_SIZE
from .sandbox_state import RetellState


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> SandboxResponse:
    return SandboxResponse(status, {"status": status, "message": message}, headers or {})


def rate_limit_headers(seconds: float) -> dict[str, str]:
    # Retell documents no rate-limit headers; these are the ones its Stainless SDK honours.
    return {
        "Retry-After": str(max(1, round(seconds))),
        "retry-after-ms": str(int(seconds * 1000)),
        "x-should-retry": "true",
    }


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_cursor(value: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None


class BadRequest(Exception):
    """A request the real API would refuse with 400; the message names the field."""


def int_arg(value: Any, name: str, *, default: int, low: int, high: int) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be an integer") from None
    if not low <= number <= high:
        raise BadRequest(f"{name} must be between {low} and {high}")
    return number


def list_args(limit: Any, order: Any) -> tuple[int, str]:
    """A list call's page size (1 to 1000, default 50) and sort order."""
    return int_arg(limit, "limit", default=50, low=1, high=MAX_PAGE_SIZE), sort_order(order)


def sort_order(order: Any) -> str:
    if order not in ("ascending", "descending"):
        raise BadRequest("sort_order must be ascending or descending")
    return order


def answers_bad_requests(func: Any) -> Any:
    """Turn BadRequest raised by a handler into Retell's 400 body (the base turns other
    exceptions into 500, as a real server's bug would be)."""

    def handler(self: RetellApi, request: SandboxRequest) -> SandboxResponse:
        try:
            return func(self, request)
        except BadRequest as exc:
            return error_response(400, str(exc))

    handler.__name__ = func.__name__
    handler.__doc__ = func.__doc__
    return handler


class RetellApi(RetellState):
    """Retell's request handling (mixed into RetellSandbox by the route mixins)."""

    api_keys: set[str]

    def throttle(self, *, times: int = 1, retry_after: float = 1.0, path: str | None = None) -> None:
        """Answer the next `times` requests with 429 and Retry-After / retry-after-ms."""
        self.inject_fault(
            status=429,
            body={"status": 429, "message": "Too many requests, please retry later."},
            headers=rate_limit_headers(retry_after),
            count=times,
            path=path,
        )

    def fault_body(self, status: int) -> Any:
        return {"status": status, "message": f"injected fault {status}"}

    def not_found(self, request: SandboxRequest) -> SandboxResponse:
        return error_response(404, f"Cannot {request.method} {request.path}")

    def _handle(self, request: SandboxRequest) -> SandboxResponse:
        if not self._authorized(request):
            return error_response(401, "Unauthorized: the API key is missing or invalid.")
        response = super()._handle(request)
        if response.status == 429 and "Retry-After" not in response.headers:
            response.headers.update(rate_limit_headers(1.0))
        return response

    def _authorized(self, request: SandboxRequest) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and token.strip() in self.api_keys

    def _json_body(self, request: SandboxRequest, *, required: bool = True) -> dict[str, Any]:
        if not request.body:
            if required:
                raise BadRequest("request body must be a JSON object")
            return {}
        try:
            body = json.loads(request.body)
        except ValueError:
            raise BadRequest("request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("request body must be a JSON object")
        return body

    def _page(
        self,
        items: list[dict[str, Any]],
        key: str,
        limit: int,
        cursor: str | None,
        *,
        skip: int = 0,
    ) -> dict[str, Any]:
        if cursor:
            after = decode_cursor(cursor)
            ids = [item[key] for item in items]
            if after not in ids:
                raise BadRequest("pagination_key is not valid for this listing")
            items = items[ids.index(after) + 1 :]
        items = items[skip:]
        page, rest = items[:limit], items[limit:]
        return {
            "items": page,
            "has_more": bool(rest),
            "pagination_key": encode_cursor(page[-1][key]) if rest and page else None,
        }
