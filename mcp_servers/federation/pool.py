"""Kept client sessions to remote MCP servers, one pool per process.

Opening a session costs a TCP (and TLS) connection and, in the handshake era, an `initialize`
round trip: several times a kept session's call. The pool keeps one opened session per
(registration, credential, era) and reuses it across calls and threads (gunicorn threads,
Celery). The SDK is asynchronous and a session must be opened and closed by the same task, so
one background thread runs an event loop owning every session; a caller in any thread submits
its call there and waits for the answer, bounded by its deadline.

A session is retired (no new calls; closed once its calls are done) when a call fails in a way
that may have left it broken (a timeout, a transport failure), when its registration's URL,
credential, era or deadline changes or the registration is disabled or deleted, when it has
been idle FEDERATION_SESSION_IDLE_SECONDS, or when the pool is full
(FEDERATION_SESSION_POOL_SIZE) and it is the least recently used one. A server that no longer
knows the session (HTTP 404, "Session terminated", as the spec says after a restart or an
expiry) gets one retry on a new session: that request was provably not processed. Every
session is closed at process exit; a forked child starts a pool of its own.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextvars
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from django.conf import settings

from .client import CURRENT_INCIDENT

# registration id, credential digest (URL, token, size cap, deadline), protocol era
Key = tuple[int, str, str]
Opener = Callable[[], AbstractAsyncContextManager[Any]]

# The caller's wait outlives its deadline by this much: the loop enforces the deadline itself,
# this only guards against a loop that stopped answering.
GRACE_SECONDS = 2.0
# How long a call that saw its session die waits for the session's own error (the real cause).
CAUSE_WAIT_SECONDS = 0.5


def _session_expired(exc: BaseException) -> bool:
    """The server answered this call's request with 404 under the session's id (the guard saw
    it: the SDK passes on the server's JSON-RPC error body, whatever it says)."""
    from mcp.shared.exceptions import MCPError as RemoteProtocolError

    incident = CURRENT_INCIDENT.get()
    return isinstance(exc, RemoteProtocolError) and incident is not None and incident.session_expired


def _connection_closed(exc: BaseException) -> bool:
    from mcp.shared.exceptions import MCPError as RemoteProtocolError
    from mcp_types import CONNECTION_CLOSED

    return isinstance(exc, RemoteProtocolError) and exc.code == CONNECTION_CLOSED


def _keeps_session(exc: BaseException) -> bool:
    """A JSON-RPC error the server answered (unknown tool, bad arguments) leaves the session as
    it was; anything else may not have."""
    from mcp.shared.exceptions import MCPError as RemoteProtocolError

    return isinstance(exc, RemoteProtocolError) and not _connection_closed(exc) and not _session_expired(exc)


class _Entry:
    """One kept session and the task that owns it (it opened the session and will close it)."""

    def __init__(self, key: Key, opener: Opener) -> None:
        self.key = key
        self.opener = opener
        self.client: Any = None
        self.ready = asyncio.Event()
        self.stop = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.error: BaseException | None = None
        self.inflight = 0
        self.retired = False
        self.last_used = time.monotonic()

    @property
    def usable(self) -> bool:
        return not self.retired and self.client is not None and self.task is not None and not self.task.done()

    async def own(self) -> None:
        try:
            async with self.opener() as client:
                self.client = client
                self.ready.set()
                await self.stop.wait()
        except Exception as exc:  # noqa: BLE001 - kept for the calls that saw the session die
            self.error = exc
        finally:
            self.client = None
            self.ready.set()


class SessionPool:
    """The process's kept remote sessions (module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid: int | None = None
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()
        self._opening: dict[Key, asyncio.Lock] = {}
        self._live: set[_Entry] = set()  # open or closing, kept or retired
        self._reaper: asyncio.Task | None = None
        self.opened = 0  # sessions this process opened (tests, the bench)

    # --- from any thread ------------------------------------------------------------------

    def call(
        self,
        key: Key,
        opener: Opener,
        work: Callable[[Any], Awaitable[Any]],
        timeout: float,
        context: contextvars.Context,
    ) -> Any:
        """Run `work(client)` on the kept session for `key` (opened with `opener` if there is
        none), within `timeout` seconds, in `context` (the caller's context variables)."""
        loop = self._running_loop()
        answer: concurrent.futures.Future = concurrent.futures.Future()
        started: list[asyncio.Task] = []

        def start() -> None:
            task = loop.create_task(self._call(key, opener, work, timeout), context=context)
            started.append(task)

            def settle(done: asyncio.Task) -> None:
                if answer.done():
                    return
                if done.cancelled():
                    answer.set_exception(TimeoutError("the remote call was cancelled"))
                elif done.exception() is not None:
                    answer.set_exception(done.exception())
                else:
                    answer.set_result(done.result())

            task.add_done_callback(settle)

        loop.call_soon_threadsafe(start)
        try:
            return answer.result(timeout + GRACE_SECONDS)
        except concurrent.futures.TimeoutError:
            loop.call_soon_threadsafe(lambda: started and started[0].cancel())
            raise TimeoutError("the remote call did not finish in time") from None

    def discard(self, registration_id: int) -> None:
        """Retire the sessions of this registration (changed, disabled or deleted)."""
        loop = self._loop
        if loop is not None and self._pid == os.getpid() and not loop.is_closed():
            loop.call_soon_threadsafe(self._retire_registration, registration_id)

    def close_all(self, timeout: float = 5.0) -> None:
        """Close every session now and wait (bounded) until they are closed."""
        loop = self._loop
        if loop is None or self._pid != os.getpid() or loop.is_closed() or not loop.is_running():
            return
        future = asyncio.run_coroutine_threadsafe(self._close_all(timeout), loop)
        try:
            future.result(timeout + GRACE_SECONDS)
        except (concurrent.futures.TimeoutError, RuntimeError):
            future.cancel()

    def size(self) -> int:
        return len(self._entries)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                # A forked child (gunicorn, Celery prefork) inherits no thread: a loop of its own.
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="federation-sessions", daemon=True).start()
                self._entries, self._opening, self._live, self.opened = OrderedDict(), {}, set(), 0
                self._loop, self._pid = loop, os.getpid()
                loop.call_soon_threadsafe(self._start_reaper)
            return self._loop

    # --- on the pool's loop -----------------------------------------------------------------

    def _start_reaper(self) -> None:
        # Held: the loop keeps only a weak reference to its tasks.
        self._reaper = asyncio.get_running_loop().create_task(self._reap())

    async def _call(self, key: Key, opener: Opener, work, timeout: float) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        for attempt in range(2):
            entry, fresh = await self._acquire(key, opener, deadline)
            entry.inflight += 1
            try:
                async with asyncio.timeout_at(deadline):
                    return await work(entry.client)
            except Exception as exc:
                if _keeps_session(exc):
                    raise
                self._retire(entry)
                if attempt == 0 and not fresh and _session_expired(exc):
                    CURRENT_INCIDENT.get().session_expired = False
                    continue  # the server forgot the session: one new session, the same request
                if _connection_closed(exc) and entry.task is not None:
                    # The session died under this call: its own error says why.
                    await asyncio.wait({entry.task}, timeout=CAUSE_WAIT_SECONDS)
                    if entry.error is not None:
                        raise entry.error from None
                raise
            finally:
                entry.inflight -= 1
                entry.last_used = time.monotonic()
                if entry.retired and entry.inflight == 0:
                    entry.stop.set()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _acquire(self, key: Key, opener: Opener, deadline: float) -> tuple[_Entry, bool]:
        self._retire_idle()
        entry = self._entries.get(key)
        if entry is not None and entry.usable:
            self._entries.move_to_end(key)
            return entry, False
        lock = self._opening.setdefault(key, asyncio.Lock())
        async with asyncio.timeout_at(deadline), lock:
            # Concurrent first calls: one opens the session, the others wait and share it.
            entry = self._entries.get(key)
            if entry is not None and entry.usable:
                self._entries.move_to_end(key)
                return entry, False
            # The registration's URL, credential, era or deadline changed: its old session goes.
            for other in list(self._entries.values()):
                if other.key[0] == key[0]:
                    self._retire(other)
            entry = _Entry(key, opener)
            entry.task = asyncio.get_running_loop().create_task(entry.own())
            self._live.add(entry)
            entry.task.add_done_callback(lambda _task: self._live.discard(entry))
            try:
                await entry.ready.wait()
            except BaseException:
                entry.task.cancel()
                raise
            if entry.client is None:
                raise entry.error or ConnectionError("the remote session could not be opened")
            self._entries[key] = entry
            self.opened += 1
            while len(self._entries) > max(settings.FEDERATION_SESSION_POOL_SIZE, 1):
                self._retire(next(iter(self._entries.values())))
            return entry, True

    def _retire(self, entry: _Entry) -> None:
        if self._entries.get(entry.key) is entry:
            del self._entries[entry.key]
            lock = self._opening.get(entry.key)
            if lock is not None and not lock.locked():
                del self._opening[entry.key]  # keys of gone credentials do not pile up
        entry.retired = True
        if entry.inflight == 0:
            entry.stop.set()

    def _retire_registration(self, registration_id: int) -> None:
        for entry in list(self._entries.values()):
            if entry.key[0] == registration_id:
                self._retire(entry)

    async def _close_all(self, timeout: float) -> None:
        entries = list(self._live)
        for entry in entries:
            self._retire(entry)
            entry.stop.set()
        tasks = {e.task for e in entries if e.task is not None and not e.task.done()}
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()

    def _retire_idle(self) -> None:
        idle, now = settings.FEDERATION_SESSION_IDLE_SECONDS, time.monotonic()
        for entry in list(self._entries.values()):
            if entry.inflight == 0 and now - entry.last_used > idle:
                self._retire(entry)

    async def _reap(self) -> None:
        # At every call, and in between for a process that stopped calling.
        while True:
            await asyncio.sleep(min(settings.FEDERATION_SESSION_IDLE_SECONDS / 2, 30.0))
            self._retire_idle()


_pool = SessionPool()


def session_pool() -> SessionPool:
    return _pool


@atexit.register
def _close_at_exit() -> None:
    _pool.close_all(timeout=2.0)
