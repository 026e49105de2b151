"""The call recorder: writes the audit row and the metric increment of every orchestrated call.

Two ways, chosen per call by `route()`:

- durable: written before the caller gets its answer (one statement, see metrics.record_call).
  Every call that can change something, every call made from inside the platform (engine,
  console, webhooks, Celery) and everything when MCP_AUDIT_FLUSH_MS is 0.
- batched: read-only calls arriving over the network transports (MCP_AUDIT_BATCHED_TRANSPORTS)
  are queued in this process and written by a background thread every MCP_AUDIT_FLUSH_MS, as
  one multi-row INSERT plus one rollup upsert per (minute, service, operation, tenant) in one
  transaction. On this 2-core machine the per-call commit, not the database's work, was most of
  a /mcp call (bench_mcp): batching keeps every row and every count, and makes reads cheap.

Nothing is dropped: a full queue makes the caller write its own row (backpressure), a failed
batch stays queued and is retried, and the queue is flushed when the process exits normally
(gunicorn's graceful stop, management commands). What batching gives up is only the moment of
writing: a process killed with SIGKILL loses at most one interval of read-only audit rows.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections

from .metrics import record_call, record_calls
from .prometheus import set_audit_pending

logger = logging.getLogger(__name__)

Pending = tuple[dict[str, Any], dict[str, Any] | None]


class CallRecorder:
    """Per-process recorder: durable writes inline, batched writes through a flusher thread."""

    def __init__(self, *, flush_interval_ms: int, max_pending: int, batched_transports: tuple[str, ...]):
        self.flush_interval_s = flush_interval_ms / 1000
        self.max_pending = max_pending
        self.batched_transports = frozenset(batched_transports)
        self._pending: list[Pending] = []
        self._lock = threading.Lock()  # guards _pending and _thread
        self._write_lock = threading.Lock()  # one batch write at a time in this process
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self._full = False

    def is_batched(self, transport: str, *, read_only: bool) -> bool:
        return self.flush_interval_s > 0 and read_only and transport in self.batched_transports

    def record(self, audit: dict[str, Any], metric: dict[str, Any] | None, *, batched: bool) -> None:
        """Write now, or queue for the flusher. Raises only from a durable write."""
        if batched:
            with self._lock:
                if len(self._pending) < self.max_pending:
                    self._pending.append((audit, metric))
                    self._ensure_flusher()
                    self._full = False
                    set_audit_pending(len(self._pending))
                    return
                warn, self._full = not self._full, True
            # The queue is full (the database is slow or away): the caller writes its own row,
            # so that load slows down instead of losing records.
            if warn:
                logger.warning(
                    "audit queue full (%d rows): calls write their own rows until it drains", self.max_pending
                )
        record_call(audit=audit, metric=metric)

    def status(self) -> dict[str, Any]:
        """This process's queue, for the health report: degraded while batches fail or it is full."""
        pending = self.pending()
        problem = "batches are failing; rows stay queued" if self._failing else ""
        if not problem and self._full:
            problem = "queue full; calls write their own rows"
        return {
            "status": "degraded" if problem else "healthy",
            "batched": self.flush_interval_s > 0,
            "flush_ms": round(self.flush_interval_s * 1000),
            "pending": pending,
            "max_pending": self.max_pending,
            "detail": problem or "writing",
        }

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def flush(self) -> int:
        """Write everything queued so far, in the calling thread; returns how many rows."""
        written = 0
        with self._write_lock:
            while True:
                with self._lock:
                    batch, self._pending = self._pending[:1000], self._pending[1000:]
                if not batch:
                    set_audit_pending(self.pending())
                    return written
                try:
                    record_calls(batch)
                except (OperationalError, InterfaceError):
                    # The database is away or the connection broke: keep every row, first in
                    # line, for the next attempt.
                    with self._lock:
                        self._pending[:0] = batch
                    self._failing = True
                    raise
                except Exception:
                    # Some row cannot be stored (bad data, not a bad database): store the others
                    # one by one, so that one row can never hold up the queue.
                    written += self._write_one_by_one(batch)
                    continue
                self._failing = False
                written += len(batch)

    def _write_one_by_one(self, batch: list[Pending]) -> int:
        written = 0
        for index, item in enumerate(batch):
            try:
                record_calls([item])
            except (OperationalError, InterfaceError):
                with self._lock:
                    self._pending[:0] = batch[index:]
                self._failing = True
                raise
            except Exception:
                # Never the params or the message: they may be what could not be stored.
                logger.exception(
                    "audit row of request %s cannot be stored; dropped", item[0].get("request_id")
                )
            else:
                written += 1
        return written

    def _ensure_flusher(self) -> None:
        # Called with self._lock held.
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="audit-flusher", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            was_failing = self._failing  # flush() keeps _failing up to date
            try:
                self.flush()
                if was_failing and not self._failing:
                    logger.warning("audit flusher: writing again; the queued rows are stored")
            except Exception:
                if not was_failing:  # once per outage, not once per interval
                    logger.exception(
                        "audit flusher: could not write %d queued rows; retrying", self.pending()
                    )
            finally:
                # A broken or server-closed connection is replaced at the next attempt.
                connections[DEFAULT_DB_ALIAS].close_if_unusable_or_obsolete()

    def _after_fork(self) -> None:
        # The parent writes what it queued; a forked child starts empty and with no thread.
        self._pending = []
        self._thread = None
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()


_recorder: CallRecorder | None = None


def get_recorder() -> CallRecorder:
    global _recorder
    if _recorder is None:
        _recorder = CallRecorder(
            flush_interval_ms=settings.MCP_AUDIT_FLUSH_MS,
            max_pending=settings.MCP_AUDIT_MAX_PENDING,
            batched_transports=tuple(settings.MCP_AUDIT_BATCHED_TRANSPORTS),
        )
    return _recorder


def flush_recorder() -> int:
    """Write this process's queued audit rows now (tests, commands, shutdown)."""
    return _recorder.flush() if _recorder is not None else 0


def _flush_at_exit() -> None:
    try:
        flush_recorder()
    except Exception:
        logger.exception("audit flusher: could not write queued rows at exit")


def _reset_on_settings_change(*, setting: str, **kwargs: Any) -> None:
    global _recorder
    if setting.startswith("MCP_AUDIT_"):
        if _recorder is not None:
            _flush_at_exit()
        _recorder = None


atexit.register(_flush_at_exit)
os.register_at_fork(after_in_child=lambda: _recorder._after_fork() if _recorder is not None else None)
setting_changed.connect(_reset_on_settings_change)
