"""A base for the upstream sandboxes: real HTTP servers on 127.0.0.1 that fake a SaaS API.

Each server's sandbox.py subclasses SandboxServer, declares routes with @route, and keeps
its state in memory. Every sandbox can inject faults on command (status codes, latency,
stalls) and logs the requests it saw, so tests can prove that no upstream call was made.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from aiohttp import web

CONTROL_PREFIX = "/__sandbox__"
# Threads for handlers that may sleep (faults with a delay, stalls): one per request held.
HANDLER_THREADS = 32


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
        self._bound_port: int | None = None
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._handler_pool: concurrent.futures.ThreadPoolExecutor | None = None
        # Made and used on the loop's thread only.
        self._http_server: web.Server | None = None
        self._listener: asyncio.AbstractServer | None = None

    # --- lifecycle ---
    @property
    def port(self) -> int:
        assert self._bound_port is not None, "sandbox not started"
        return self._bound_port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> SandboxServer:
        """Serve on (host, requested port) from an event loop on a thread of its own; returns
        once the port is bound (an error binding it is raised here)."""
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._event_loop = asyncio.new_event_loop()
        self._handler_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=HANDLER_THREADS, thread_name_prefix=f"sandbox-{self.service}"
        )
        self._thread = threading.Thread(
            target=self._run_event_loop, args=(ready,), name=f"sandbox-{self.service}", daemon=True
        )
        self._thread.start()
        try:
            ready.result(timeout=30)
        except BaseException:
            self._thread.join(timeout=5)
            self._handler_pool.shutdown(wait=False)
            self._event_loop = self._thread = self._handler_pool = None
            raise
        return self

    def _run_event_loop(self, ready: concurrent.futures.Future[None]) -> None:
        loop = self._event_loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            self._http_server = web.Server(self._answer_http, loop=loop, access_log=None)
            self._listener = loop.run_until_complete(
                loop.create_server(self._http_server, self.host, self.requested_port, reuse_address=True)
            )
        except BaseException as exc:
            loop.close()
            ready.set_exception(exc)
            return
        self._bound_port = self._listener.sockets[0].getsockname()[1]
        ready.set_result(None)
        try:
            loop.run_forever()
        finally:
            # Clients' kept-alive connections are closed, not waited for (a graceful shutdown
            # waits out its whole timeout on an idle one: a second for every sandbox stopped).
            self._listener.close()
            for connection in list(self._http_server.connections):
                connection.force_close()
            loop.run_until_complete(self._http_server.shutdown(timeout=0.1))
            loop.run_until_complete(self._listener.wait_closed())
            loop.close()

    def stop(self) -> None:
        loop, thread, executor = self._event_loop, self._thread, self._handler_pool
        if loop is None or thread is None:
            return
        self._event_loop = self._thread = self._handler_pool = None
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

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
    async def _answer_http(self, incoming: web.BaseRequest) -> web.StreamResponse:
        """One HTTP request: the route's answer. Handlers are plain functions; they run on the
        loop itself, except while faults are set or for the control paths, which may sleep (a
        delay, a stall) and so run on a thread, never holding up other connections."""
        parts = urlsplit(incoming.raw_path)
        request = SandboxRequest(
            method=incoming.method,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in incoming.headers.items()},
            body=await incoming.content.read() if incoming.can_read_body else b"",
        )
        if self.faults or parts.path.startswith(CONTROL_PREFIX):
            loop = asyncio.get_running_loop()
            response = await loop.run_in_executor(self._handler_pool, self._respond_to, request)
        else:
            response = self._respond_to(request)
        payload, headers = response.encode()
        return web.Response(status=response.status, body=payload, headers=headers)

    def _respond_to(self, request: SandboxRequest) -> SandboxResponse:
        if request.path.startswith(CONTROL_PREFIX):
            return self._control(request)
        with self.lock:
            self.request_log.append(request)
        return self._handle(request)

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
