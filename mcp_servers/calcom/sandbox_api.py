"""The front door of every Cal.com sandbox route: Bearer `cal_` keys, the per-key rate limit
with the X-RateLimit-*-Default headers, the `cal-api-version` of each endpoint group, and
the success and NestJS error envelopes."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from mcp_core.sandbox import SandboxRequest, SandboxResponse

from .sandbox_state import CalcomError, CalcomState, iso

ERROR_CODES = {
    400: "BadRequestException",
    401: "UnauthorizedException",
    403: "ForbiddenException",
    404: "NotFoundException",
    409: "ConflictException",
    429: "ThrottlerException",
    500: "InternalServerErrorException",
    502: "BadGatewayException",
    503: "ServiceUnavailableException",
    504: "GatewayTimeoutException",
}


class CalcomApi(CalcomState):
    """Cal.com's request handling: `_serve(request, handler, versions=..., ...)` runs a handler
    behind the checks and turns a CalcomError into Cal.com's error body."""

    rate_limit: int
    rate_window: float
    _rate: dict[str, tuple[float, int]]  # key -> (window start, count)

    def error(
        self, request: SandboxRequest, status: int, message: str, details: Any = None
    ) -> SandboxResponse:
        error: dict[str, Any] = {"code": ERROR_CODES.get(status, "HttpException"), "message": message}
        if details is not None:
            error["details"] = details
        body = {
            "status": "error",
            "timestamp": iso(dt.datetime.now(dt.UTC)),
            "path": request.path,
            "error": error,
        }
        return SandboxResponse(status, body)

    def fault_body(self, status: int) -> Any:
        return {
            "status": "error",
            "timestamp": iso(dt.datetime.now(dt.UTC)),
            "path": "",
            "error": {
                "code": ERROR_CODES.get(status, "HttpException"),
                "message": f"injected fault {status}",
            },
        }

    def not_found(self, request: SandboxRequest) -> SandboxResponse:
        return self.error(request, 404, f"Cannot {request.method} {request.path}")

    @staticmethod
    def ok(data: Any, status: int = 200, **extra: Any) -> SandboxResponse:
        return SandboxResponse(status, {"status": "success", "data": data, **extra})

    def _guard(
        self,
        request: SandboxRequest,
        *,
        versions: tuple[str, ...] | None,
        required_version: bool,
        public: bool = False,
    ) -> tuple[dict[str, Any] | None, dict[str, str]]:
        """Auth, rate limit and version checks; raises CalcomError. Returns (user, headers)."""
        header = request.headers.get("authorization", "")
        user = None
        if header or not public:
            token = header[7:].strip() if header[:7].lower() == "bearer " else ""
            user = self.accounts.get(token) if token.startswith("cal_") else None
            if user is None:
                message = (
                    "No authorization header provided" if not header else "Invalid API Key"
                )  # the key itself is never echoed
                raise CalcomError(401, message)
        headers = self._rate_limit(header or "anonymous")
        version = request.headers.get("cal-api-version")
        if versions is not None:
            if version is None and required_version:
                raise CalcomError(
                    400,
                    f"cal-api-version header is required for {request.path} "
                    f"(use {versions[0]}); without it the legacy 2024-04-15 controller answers",
                )
            if version is not None and version not in versions:
                raise CalcomError(400, f"Unsupported cal-api-version {version!r} for {request.path}")
        return user, headers

    def _rate_limit(self, key: str) -> dict[str, str]:
        now = time.time()
        with self.lock:
            started, count = self._rate.get(key, (now, 0))
            if now - started >= self.rate_window:
                started, count = now, 0
            count += 1
            self._rate[key] = (started, count)
        reset = int(started + self.rate_window)
        headers = {
            "X-RateLimit-Limit-Default": str(self.rate_limit),
            "X-RateLimit-Remaining-Default": str(max(0, self.rate_limit - count)),
            "X-RateLimit-Reset-Default": str(reset),
        }
        if count > self.rate_limit:
            headers["Retry-After"] = str(max(1, int(reset - now + 0.999)))
            raise CalcomError(429, "ThrottlerException: Too Many Requests", {"headers": headers})
        return headers

    def _serve(self, request: SandboxRequest, handler, **guard: Any) -> SandboxResponse:
        try:
            user, headers = self._guard(request, **guard)
            response = handler(user)
        except CalcomError as exc:
            headers = {}
            if exc.status == 429:
                headers = exc.details["headers"]
                response = self.error(request, 429, exc.message)
            else:
                response = self.error(request, exc.status, exc.message, exc.details)
        response.headers.update(headers)
        return response
