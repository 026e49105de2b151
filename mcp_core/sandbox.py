"""A base for the upstream sandboxes: real HTTP servers on 127.0.0.1 that fake a SaaS API.

Each server's sandbox.py subclasses SandboxServer, declares routes with @route, and keeps
its state in memory. Every sandbox can inject faults on command (status codes, latency,
stalls) and logs the requests it saw, so tests can prove that no upstream call was made.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

CONTROL_PREFIX = "/__sandbox__"


@dataclass
class SandboxRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # named groups of the route

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode(), keep_blank_values=True)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default


@dataclass
class SandboxResponse:
    status: int = 200
    body: Any = None  # dict/list -> JSON; bytes/str -> as is
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if isinstance(self.body, bytes):
            payload = self.body
        elif isinstance(self.body, str):
            payload = self.body.encode()
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        elif self.body is None:
            payload = b""
        else:
            payload = json.dumps(self.body, default=str).encode()
            headers.setdefault("Content-Type", "application/json")
        return payload, headers


@dataclass
class Fault:
    """Answer matching requests with `status` (and `body`), after `delay` seconds; a stall
    holds the connection for `delay` seconds without answering usefully. `count` None = forever."""

    status: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    count: int | None = None
    path: str | None = None  # a regex on the path; None matches every request

    def matches(self, request: SandboxRequest) -> bool:
        return self.path is None or re.search(self.path, request.path) is not None


Handler = Callable[[Any, SandboxRequest], SandboxResponse]


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    """Declare a handler for METHOD and a path regex (anchored; named groups become params)."""

    def decorator(func: Handler) -> Handler:
        func.__sandbox_route__ = (method.upper(), re.compile(f"^{pattern}$"))  # type: ignore[attr-defined]
        return func

    return decorator


class SandboxServer:
    """Base for a contract-faithful fake of one upstream API."""

    service: ClassVar[str] = ""
    _routes: ClassVar[list[tuple[str, re.Pattern[str], str]]] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        routes = []
        for klass in reversed(cls.__mro__):
            for name, attr in vars(klass).items():
                spec = getattr(attr, "__sandbox_route__", None)
                if spec:
                    routes.append((spec[0], spec[1], name))
        cls._routes = routes

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.requested_port = port
        self.lock = threading.RLock()
        self.faults: list[Fault] = []
        self.request_log: list[SandboxRequest] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---
    @property
    def port(self) -> int:
        assert self._httpd is not None, "sandbox not started"
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> SandboxServer:
        sandbox = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, so clients can pool connections
            # Headers and body go out in separate writes; with Nagle on, a kept-alive
            # connection stalls ~40 ms per answer on the client's delayed ACK.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read request_log
                return

            def _serve(self) -> None:
                sandbox._dispatch(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        self._httpd = ThreadingHTTPServer((self.host, self.requested_port), _Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name=f"sandbox-{self.service}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- fault injection ---
    def inject_fault(self, **kwargs: Any) -> Fault:
        fault = Fault(**kwargs)
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def requests_to(self, path_regex: str) -> list[SandboxRequest]:
        with self.lock:
            return [r for r in self.request_log if re.search(path_regex, r.path)]

    def _take_fault(self, request: SandboxRequest) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(request):
                    if fault.count is not None:
                        fault.count -= 1
                        if fault.count <= 0:
                            self.faults.remove(fault)
                    return fault
        return None

    # --- dispatch ---
    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        request = SandboxRequest(
            method=handler.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
        )
        if parts.path.startswith(CONTROL_PREFIX):
            response = self._control(request)
        else:
            with self.lock:
                self.request_log.append(request)
            response = self._handle(request)
        payload, headers = response.encode()
        try:
            handler.send_response(response.status)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nothing to answer

    def _handle(self, request: SandboxRequest) -> SandboxResponse:
        fault = self._take_fault(request)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.status is not None:
                return SandboxResponse(
                    fault.status,
                    fault.body if fault.body is not None else self.fault_body(fault.status),
                    fault.headers,
                )
        for method, pattern, name in self._routes:
            if method != request.method:
                continue
            match = pattern.match(request.path)
            if match:
                request.params = {k: v for k, v in match.groupdict().items() if v is not None}
                try:
                    return getattr(self, name)(request)
                except Exception as exc:  # a sandbox bug must show up as a 500, like a real server's
                    return SandboxResponse(500, {"message": f"sandbox error: {type(exc).__name__}: {exc}"})
        return self.not_found(request)

    def _control(self, request: SandboxRequest) -> SandboxResponse:
        """POST /__sandbox__/faults {fault fields}; DELETE /__sandbox__/faults; GET /__sandbox__/requests."""
        if request.path == f"{CONTROL_PREFIX}/faults" and request.method == "POST":
            fault = self.inject_fault(**(request.json() or {}))
            return SandboxResponse(201, {"injected": fault.__dict__})
        if request.path == f"{CONTROL_PREFIX}/faults" and request.method == "DELETE":
            self.clear_faults()
            return SandboxResponse(204)
        if request.path == f"{CONTROL_PREFIX}/requests" and request.method == "GET":
            with self.lock:
                return SandboxResponse(200, [{"method": r.method, "path": r.path} for r in self.request_log])
        return SandboxResponse(404, {"message": "unknown sandbox control"})

    # --- hooks for subclasses: the upstream's own error shapes ---
    def fault_body(self, status: int) -> Any:
        return {"message": f"injected fault {status}"}

    def not_found(self, request: SandboxRequest) -> SandboxResponse:
        return SandboxResponse(404, {"message": f"no route for {request.method} {request.path}"})
