"""Structured logs: the call's context on every record, and one JSON object per line.

`route()` and the request middleware bind the context (request id, tenant, service, operation)
in a ContextVar, so every log line written while a call runs carries it, whichever module
writes it. With LOG_FORMAT=json the stderr handler writes one JSON object per line
(docs/observability.md); free text (message and traceback) passes through the same redaction
as Sentry events, so a key a library prints ends up as "[redacted]".

No Django models here: settings configure logging with these classes before apps load.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import uuid
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .redaction import redact_text

FIELDS = ("request_id", "trace_id", "tenant", "service", "operation")
# Never mutated: bind() sets a new mapping, so a copied context (threads, tasks) stays its own.
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "askpro_log_context", default=MappingProxyType({})
)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

try:  # the API package comes with the SDKs; without a tracer provider every span is invalid
    from opentelemetry import trace as _otel_trace
except ImportError:  # pragma: no cover - opentelemetry-api is installed with the project
    _otel_trace = None


def bind(**fields: Any) -> contextvars.Token:
    """Add fields to the context of this thread/task; give the token to `unbind`."""
    cleaned = {k: (str(v)[:100] if v is not None else None) for k, v in fields.items()}
    return _context.set({**_context.get(), **cleaned})


def unbind(token: contextvars.Token) -> None:
    _context.reset(token)


def current() -> dict[str, Any]:
    return dict(_context.get())


def current_trace_id() -> str | None:
    """The active OpenTelemetry trace id (32 hex digits), or None when nothing traces."""
    if _otel_trace is None:
        return None
    context = _otel_trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


class ContextFilter(logging.Filter):
    """Puts the bound context (and the trace id) on every record as attributes."""

    def filter(self, record: logging.LogRecord) -> bool:
        bound = _context.get()
        for name in FIELDS:
            if not hasattr(record, name):
                setattr(record, name, bound.get(name))
        if record.trace_id is None:
            record.trace_id = current_trace_id()
        return True


class PlainFormatter(logging.Formatter):
    """The plain `time level logger message` line, with ` trace_id=<32 hex>` appended while a
    trace is active (OpenTelemetry on, docs/observability.md)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        trace_id = getattr(record, "trace_id", None)
        if not trace_id:
            return line
        # After the first line: a traceback stays below the line that names the trace.
        first, newline, rest = line.partition("\n")
        return f"{first} trace_id={trace_id}{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, message, the context fields and,
    for an exception, its traceback; message and traceback redacted."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": redact_text(record.getMessage()),
        }
        for name in FIELDS:
            entry[name] = getattr(record, name, None)
        if record.exc_info:
            entry["exception"] = redact_text(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = redact_text(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact_text(self.formatStack(record.stack_info))
        # ensure_ascii: a line is one line whatever the message holds (no raw newlines or NULs).
        return json.dumps(entry, ensure_ascii=True, default=str)


def _request_id_from(headers: Mapping[str, Any]) -> str:
    given = headers.get("HTTP_X_REQUEST_ID") or ""
    return given if isinstance(given, str) and _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def bind_request(
    sender: Any, environ: Mapping[str, Any] | None = None, scope: Any = None, **kwargs: Any
) -> None:
    """request_started: a fresh context with a request id for the whole HTTP request, Django's
    own "Not Found: ..." lines included (they are written after the middleware returns). The
    client's X-Request-ID when well-formed, else a new one; the pipeline binds each call's own."""
    headers: Mapping[str, Any] = environ or {}
    if scope is not None:  # ASGI
        headers = {"HTTP_" + k.decode("latin-1").upper().replace("-", "_"): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}  # fmt: skip
    _context.set(MappingProxyType({"request_id": _request_id_from(headers)}))


def unbind_request(sender: Any, **kwargs: Any) -> None:
    """request_finished: nothing of this request stays on the thread's later lines."""
    _context.set(MappingProxyType({}))
