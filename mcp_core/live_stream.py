"""The stream process: a small ASGI application (served by uvicorn, the Procfile's `stream` line)
that pushes the live events of mcp_core.live to the admin's pages as Server-Sent Events.

Why a process of its own: the web process runs gunicorn sync workers, each serving one request at
a time, so a page holding a stream open would hold a whole worker (and be killed at
GUNICORN_TIMEOUT). Here one asyncio loop holds every stream; each costs a coroutine, a bounded
queue and its socket. The reverse proxy routes the stream's path (LIVE_STREAM_URL) here and
everything else to gunicorn (docs/deployment.md).

- One Redis subscription per process, fanned out to the open streams; each event is formatted
  once and the same bytes go to every stream.
- Only a signed-in, active staff user with mcp_core.live.LIVE_PERMISSION gets a stream: the
  Django session cookie is checked against the database, as the admin checks it (401 / 403).
- Bounded: at most LIVE_STREAM_MAX_CLIENTS streams (more get 503), at most QUEUE_SIZE events
  waiting per stream (a stream that falls behind is ended; its browser reconnects and catches up
  from the backlog by Last-Event-ID), and every event is at most live.MAX_EVENT_BYTES.
- A comment line every LIVE_STREAM_HEARTBEAT_SECONDS keeps proxies from closing a quiet stream;
  after LIVE_STREAM_MAX_AGE_SECONDS the stream ends and the browser reconnects, so a signed-out
  user or a withdrawn permission loses it within that time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from http.cookies import CookieError, SimpleCookie
from importlib import import_module
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

from asgiref.sync import sync_to_async
from django.conf import settings

from . import live, shared_state

logger = logging.getLogger(__name__)

QUEUE_SIZE = 64
RETRY_MS = 2000  # the browser's wait before it reconnects after the stream ended
_DISCONNECT = object()
_OVERFLOW = object()


def stream_path() -> str:
    return urlsplit(settings.LIVE_STREAM_URL).path or "/"


def frame(event_id: int, kind: str, data: str) -> bytes:
    return f"id: {event_id}\nevent: {kind}\ndata: {data}\n\n".encode()


def _resync_frame(last_id: int) -> bytes:
    # No id line: the browser keeps its Last-Event-ID. The page refetches everything.
    return f"event: resync\ndata: {json.dumps({'type': 'resync', 'after': last_id})}\n\n".encode()


def _parse(raw: bytes | str) -> tuple[int, bytes] | None:
    try:
        event = json.loads(raw)
        event_id, kind = int(event["id"]), str(event["type"])
    except (ValueError, KeyError, TypeError):
        logger.warning("live stream: ignored a malformed event")
        return None
    if kind not in live.EVENT_TYPES:
        return None
    text = raw.decode() if isinstance(raw, bytes) else raw
    return event_id, frame(event_id, kind, text)


def async_redis() -> Any:
    """A redis.asyncio client for the Redis that holds the resilience state (and the channel)."""
    import redis.asyncio as aioredis

    config = settings.CACHES[settings.MCP_RESILIENCE_CACHE]
    options = config.get("OPTIONS", {})
    location = config["LOCATION"]
    location = location[0] if isinstance(location, list | tuple) else location
    connect = {"socket_connect_timeout": options.get("SOCKET_CONNECT_TIMEOUT", 1.0)}
    if "Sentinel" in options.get("CLIENT_CLASS", ""):
        from redis.asyncio.sentinel import Sentinel

        db = int(urlsplit(location).path.lstrip("/") or 0)
        sentinel = Sentinel(options["SENTINELS"], sentinel_kwargs=options.get("SENTINEL_KWARGS"), **connect)
        return sentinel.master_for(
            urlsplit(location).hostname, db=db, password=options.get("PASSWORD"), health_check_interval=30
        )
    # No socket timeout: a subscription is quiet for long stretches. The health check pings an
    # idle connection, so a Redis that went away is noticed.
    return aioredis.from_url(location, health_check_interval=30, **connect)


class Stream:
    """One open stream: its queue of (id, frame) and the id it has sent last."""

    __slots__ = ("queue", "last_id")

    def __init__(self, last_id: int) -> None:
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=QUEUE_SIZE)
        self.last_id = last_id

    def put(self, item: Any) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            # Fell behind: end it (its browser reconnects and catches up from the backlog).
            self.end(_OVERFLOW)

    def end(self, reason: Any) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(reason)


class Hub:
    """This process's one subscription to the channel, fanned out to its streams."""

    def __init__(self) -> None:
        self.streams: set[Stream] = set()
        self.opening = 0  # connections between accept and their first byte (auth in progress)
        self.subscribed = False
        self.redis: Any = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self.redis = async_redis()
            self._task = asyncio.get_running_loop().create_task(self._listen())

    async def stop(self) -> None:
        for stream in list(self.streams):
            stream.end(_DISCONNECT)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # shutting down
                await self._task

    def broadcast(self, item: Any) -> None:
        for stream in list(self.streams):
            stream.put(item)

    async def _listen(self) -> None:
        delay, was_down, logged_at = 0.5, False, 0.0
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(live.channel())
                self.subscribed = True
                if was_down:
                    # Events may have been published while we were away: every page refetches.
                    self.broadcast("resync")
                    logger.warning("live stream: subscribed to Redis again")
                delay, was_down = 0.5, False
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        parsed = _parse(message["data"])
                        if parsed is not None:
                            self.broadcast(parsed)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis away: keep retrying, streams stay open
                self.subscribed, was_down = False, True
                if time.monotonic() - logged_at > 60:
                    logged_at = time.monotonic()
                    # The class only: a redis error message can carry the URL and its password.
                    logger.error("live stream: Redis subscription lost (%s); retrying", type(exc).__name__)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def backlog(self, after: int) -> list[bytes]:
        """The stored events newer than `after`, oldest first; a resync frame first when the
        backlog no longer reaches back to `after` (or the counter was reset)."""
        if after <= 0:
            return []  # a page that knows of no event: it has just read everything itself
        k = live.keys()
        raw_newest_first, current = await asyncio.gather(
            self.redis.lrange(k["backlog"], 0, -1), self.redis.get(k["sequence"])
        )
        current = int(current or 0)
        events = [p for p in map(_parse, reversed(raw_newest_first)) if p is not None]
        missed = [(event_id, data) for event_id, data in events if event_id > after]
        frames = [data for _, data in missed]
        oldest = events[0][0] if events else current + 1
        if after > current or after + 1 < oldest:
            frames.insert(0, _resync_frame(after))
        return frames


def _authorize(session_key: str | None) -> int:
    """200 for a signed-in active staff user holding LIVE_PERMISSION, else 401 or 403."""
    from django.contrib.auth import get_user
    from django.db import close_old_connections, connection

    if not session_key:
        return 401
    try:
        engine = import_module(settings.SESSION_ENGINE)
        user = get_user(SimpleNamespace(session=engine.SessionStore(session_key)))
        if not user.is_authenticated:
            return 401
        if not (user.is_active and user.is_staff and user.has_perm(live.LIVE_PERMISSION)):
            return 403
        return 200
    finally:
        # Back to the pool at once: a stream must not hold a database connection while open.
        connection.close()
        close_old_connections()


def _headers(scope: dict) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _cors(headers: dict[str, str]) -> tuple[bool, list[tuple[bytes, bytes]]]:
    """Whether the request's origin may have the stream, and the CORS headers to answer with."""
    origin = headers.get("origin")
    if not origin or urlsplit(origin).netloc == headers.get("host"):
        return True, []  # same origin (browsers send no Origin on a same-origin EventSource)
    if origin not in settings.LIVE_STREAM_ALLOWED_ORIGINS:
        return False, []
    return True, [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-allow-credentials", b"true"),
        (b"vary", b"Origin"),
    ]


def _last_event_id(headers: dict[str, str], query: str) -> int:
    raw = headers.get("last-event-id") or (parse_qs(query).get("last_event_id") or [""])[0]
    try:
        value = int(raw)
    except ValueError:
        return 0
    return value if 0 <= value < 2**62 else 0


async def _answer(send, status: int, body: dict, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"cache-control", b"no-store"),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class LiveStreamApp:
    """The ASGI application: the stream at LIVE_STREAM_URL's path, /health/live, nothing else."""

    def __init__(self) -> None:
        self.hub = Hub()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/health/live" and method in ("GET", "HEAD"):
            await _answer(
                send,
                200,
                {"status": "ok", "streams": len(self.hub.streams), "subscribed": self.hub.subscribed},
            )
            return
        if path != stream_path():
            await _answer(send, 404, {"error": {"message": "not found"}})
            return
        headers = _headers(scope)
        allowed, cors = _cors(headers)
        if not allowed:
            await _answer(send, 403, {"error": {"message": "origin: not allowed to open the stream"}})
            return
        if method == "OPTIONS":  # a preflight (a cross-origin reconnect with Last-Event-ID)
            cors += [
                (b"access-control-allow-methods", b"GET"),
                (b"access-control-allow-headers", b"last-event-id"),
            ]
            await send({"type": "http.response.start", "status": 204, "headers": cors})
            await send({"type": "http.response.body", "body": b""})
            return
        if method != "GET":
            await _answer(send, 405, {"error": {"message": "method: use GET"}}, [(b"allow", b"GET"), *cors])
            return
        if not shared_state.uses_redis() or not settings.LIVE_EVENTS:
            await _answer(
                send,
                503,
                {"error": {"message": "live events need Redis (REDIS_URL) and LIVE_EVENTS on"}},
                cors,
            )
            return
        await self._stream(scope, receive, send, headers, cors)

    async def _stream(self, scope, receive, send, headers, cors) -> None:
        hub = self.hub
        if len(hub.streams) + hub.opening >= settings.LIVE_STREAM_MAX_CLIENTS:
            await _answer(
                send,
                503,
                {"error": {"message": "too many open streams; poll instead"}},
                [(b"retry-after", b"30"), *cors],
            )
            return
        hub.opening += 1
        registered = False
        try:
            status = await sync_to_async(_authorize, thread_sensitive=False)(self._session_key(headers))
            if status != 200:
                message = (
                    "sign in to the admin first" if status == 401 else "permission: view live events needed"
                )
                await _answer(send, status, {"error": {"message": message}}, cors)
                return
            hub.start()
            stream = Stream(_last_event_id(headers, scope.get("query_string", b"").decode("latin-1")))
            hub.streams.add(stream)  # before reading the backlog: nothing falls between the two
            registered = True
            hub.opening -= 1
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream; charset=utf-8"),
                        (b"cache-control", b"no-store"),
                        (b"x-accel-buffering", b"no"),  # nginx: do not buffer this response
                        *cors,
                    ],
                }
            )
            await self._pump(stream, receive, send)
        finally:
            if registered:
                hub.streams.discard(stream)
            else:
                hub.opening -= 1

    async def _pump(self, stream: Stream, receive, send) -> None:
        watcher = asyncio.get_running_loop().create_task(self._watch_disconnect(stream, receive))
        try:
            await self._send_events(stream, send)
        except OSError:
            pass  # the browser went away while we wrote (uvicorn's ClientDisconnected)
        finally:
            watcher.cancel()

    async def _send_events(self, stream: Stream, send) -> None:
        try:
            missed = await self.hub.backlog(stream.last_id)
        except Exception as exc:  # noqa: BLE001 - Redis away: stream on, the page resyncs
            logger.warning("live stream: backlog unreadable (%s)", type(exc).__name__)
            missed = [_resync_frame(stream.last_id)] if stream.last_id else []
        opening = f"retry: {RETRY_MS}\n: connected\n\n".encode() + b"".join(missed)
        await send({"type": "http.response.body", "body": opening, "more_body": True})
        for data in missed:
            if data.startswith(b"id: "):
                stream.last_id = max(stream.last_id, int(data[4 : data.index(b"\n")]))
        heartbeat = settings.LIVE_STREAM_HEARTBEAT_SECONDS
        ends_at = time.monotonic() + settings.LIVE_STREAM_MAX_AGE_SECONDS
        while True:
            left = ends_at - time.monotonic()
            if left <= 0:
                break
            try:
                item = await asyncio.wait_for(stream.queue.get(), timeout=min(heartbeat, left))
            except TimeoutError:
                await send({"type": "http.response.body", "body": b": keep-alive\n\n", "more_body": True})
                continue
            if item is _DISCONNECT:
                return
            if item is _OVERFLOW:
                break
            if item == "resync":
                body = _resync_frame(stream.last_id)
            else:
                event_id, body = item
                if event_id <= stream.last_id:
                    continue  # already sent from the backlog
                stream.last_id = event_id
            await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    async def _watch_disconnect(stream: Stream, receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                stream.end(_DISCONNECT)
                return

    @staticmethod
    def _session_key(headers: dict[str, str]) -> str | None:
        raw = headers.get("cookie")
        if not raw:
            return None
        try:
            cookie = SimpleCookie(raw)
        except CookieError:
            return None
        morsel = cookie.get(settings.SESSION_COOKIE_NAME)
        return morsel.value[:100] if morsel else None

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.hub.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return
