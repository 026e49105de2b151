"""The Cal.com API v2 client: every call pins the `cal-api-version` of its endpoint group."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, ClassVar

import requests

from mcp_core.contracts import ErrorCode, MCPError, OperationContext
from mcp_core.http import UpstreamClient

# Versions per endpoint group, as the official calcom/companion client sends them.
VERSION_EVENT_TYPES = "2024-06-14"
VERSION_BOOKINGS = "2024-08-13"  # also /v2/me
VERSION_SLOTS = "2024-09-04"
# The largest page of GET /v2/bookings (`take`); the sandbox refuses more, as Cal.com does.
MAX_TAKE = 250


class CalcomClient(UpstreamClient):
    """Cal.com v2 with one API key (Authorization: Bearer cal_…)."""

    service: ClassVar[str] = "calcom"

    def __init__(self, *, base_url: str, api_key: str) -> None:
        super().__init__(base_url=base_url, headers={"Authorization": f"Bearer {api_key}"})

    def error_message(self, response: requests.Response) -> str:
        """Cal.com errors: {"status":"error","error":{"code":"NotFoundException","message":…}}."""
        try:
            body = response.json()
        except ValueError:
            return response.reason or f"HTTP {response.status_code}"
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            code = error.get("code")
            return f"{error['message']} ({code})" if code else error["message"]
        return super().error_message(response)

    def _error_for(self, response, method, path, retry_after):  # noqa: ANN001 - base signature
        # Cal.com announces the window's end in X-RateLimit-Reset-Default (unix seconds).
        if response.status_code == 429 and retry_after is None:
            reset = response.headers.get("X-RateLimit-Reset-Default", "")
            if reset.isdigit():
                retry_after = max(1.0, int(reset) - time.time())
        return super()._error_for(response, method, path, retry_after)

    # --- plumbing ---
    def _call(
        self,
        method: str,
        path: str,
        version: str | None,
        ctx: OperationContext | None,
        **kwargs: Any,
    ) -> requests.Response:
        headers = {"cal-api-version": version} if version else {}
        return self.request(method, path, ctx=ctx, headers=headers, **kwargs)

    @staticmethod
    def _data(response: requests.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("status") != "success" or "data" not in body:
            raise MCPError(ErrorCode.UPSTREAM_ERROR, "calcom: answered without a success envelope")
        return body["data"]

    # --- endpoints ---
    def me(self, ctx: OperationContext | None = None) -> dict[str, Any]:
        return self._data(self._call("GET", "/v2/me", VERSION_BOOKINGS, ctx))

    def event_types(self, ctx: OperationContext | None = None) -> list[dict[str, Any]]:
        return self._data(self._call("GET", "/v2/event-types", VERSION_EVENT_TYPES, ctx))

    def event_type(self, event_type_id: int, ctx: OperationContext | None = None) -> dict[str, Any]:
        return self._data(self._call("GET", f"/v2/event-types/{event_type_id}", VERSION_EVENT_TYPES, ctx))

    def slots(
        self,
        *,
        event_type_id: int,
        start: dt.date | dt.datetime,
        end: dt.date | dt.datetime,
        time_zone: str,
        ctx: OperationContext | None = None,
    ) -> dict[str, list[dict[str, Any]]]:
        """Free slot starts keyed by date in `time_zone` (format=range adds the ends)."""
        params = {
            "eventTypeId": event_type_id,
            "start": _range_value(start),
            "end": _range_value(end),
            "timeZone": time_zone,
            "format": "range",
        }
        return self._data(self._call("GET", "/v2/slots", VERSION_SLOTS, ctx, params=params))

    def bookings(
        self, query: dict[str, Any], ctx: OperationContext | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        response = self._call("GET", "/v2/bookings", VERSION_BOOKINGS, ctx, params=query)
        data = self._data(response)
        return data, response.json().get("pagination") or {}

    def booking(self, uid: str, ctx: OperationContext | None = None) -> dict[str, Any]:
        return self._data(self._call("GET", f"/v2/bookings/{uid}", VERSION_BOOKINGS, ctx))

    def create_booking(self, body: dict[str, Any], ctx: OperationContext | None = None) -> dict[str, Any]:
        # Not retried by the base (POST): a lost answer is resolved by the caller's idempotency.
        return self._data(self._call("POST", "/v2/bookings", VERSION_BOOKINGS, ctx, json=body))

    def cancel_booking(
        self, uid: str, reason: str | None, ctx: OperationContext | None = None
    ) -> dict[str, Any]:
        body = {"cancellationReason": reason} if reason else {}
        return self._data(self._call("POST", f"/v2/bookings/{uid}/cancel", VERSION_BOOKINGS, ctx, json=body))

    def confirm_booking(self, uid: str, ctx: OperationContext | None = None) -> dict[str, Any]:
        """POST /v2/bookings/{uid}/confirm: a booking awaiting confirmation becomes accepted."""
        return self._data(self._call("POST", f"/v2/bookings/{uid}/confirm", VERSION_BOOKINGS, ctx, json={}))

    def reschedule_booking(
        self, uid: str, start: dt.datetime, reason: str | None, ctx: OperationContext | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"start": utc_iso(start)}
        if reason:
            body["reschedulingReason"] = reason
        return self._data(
            self._call("POST", f"/v2/bookings/{uid}/reschedule", VERSION_BOOKINGS, ctx, json=body)
        )


def utc_iso(value: dt.datetime) -> str:
    """Cal.com wants booking starts in UTC: 2026-03-10T09:00:00Z."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _range_value(value: dt.date | dt.datetime) -> str:
    """Slots take a date (2050-09-05) or a UTC datetime."""
    return utc_iso(value) if isinstance(value, dt.datetime) else value.isoformat()
