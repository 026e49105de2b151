"""One Celery beat at a time (docs/high-availability.md#one-beat).

django-celery-beat's DatabaseScheduler has no guard of its own: two beats started against one
database would each dispatch every periodic task. SingleBeatScheduler makes a beat dispatch only
while it holds a PostgreSQL session-level advisory lock, on a connection of its own kept for the
life of the process:

- the first beat takes the lock and schedules; any further beat stays on standby and tries for
  the lock again every max interval (`celery beat --max-interval`, 5 s by default);
- the lock goes with the connection: a beat that dies, is killed or loses its connection
  (a database restart or failover, pg_terminate_backend) frees it at once, and a standby takes
  over at its next try;
- the holder checks its connection before each tick, so a beat whose connection broke stops
  dispatching before another can take over.

A beat that takes over re-reads the schedule from the database. last_run_at is written after
every dispatch (CELERY_BEAT_SYNC_EVERY = 1), so the new beat continues where the old one left
off; an entry due in the instant of the handover can run twice, never more.

Advisory locks are per database, so deployments sharing one PostgreSQL server with their own
databases never block each other. On SQLite (`make run`'s database, one machine) there is no
such lock: the scheduler says so once and behaves like DatabaseScheduler.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from typing import Any

from django.db import connections
from django_celery_beat.schedulers import DatabaseScheduler

logger = logging.getLogger("askpro.beat")

# A fixed 64-bit key for pg_try_advisory_lock, derived from a name so that it reads as ours.
LOCK_KEY = int.from_bytes(hashlib.sha256(b"askpro.celery-beat").digest()[:8], "big", signed=True)
APPLICATION_NAME = "askpro beat lock"


class BeatLock:
    """A PostgreSQL advisory lock held on a dedicated connection (not Django's, which a pool
    would hand to other code with the lock still attached)."""

    def __init__(self, alias: str = "default") -> None:
        self.alias = alias
        self.conn: Any = None

    @property
    def supported(self) -> bool:
        return connections[self.alias].vendor == "postgresql"

    def _connect(self) -> Any:
        import psycopg

        params = connections[self.alias].get_connection_params()
        params.update(autocommit=True, application_name=APPLICATION_NAME)
        params.setdefault("connect_timeout", 5)
        # A connection lost without a FIN (a network partition) must not hang the check forever.
        params.setdefault("keepalives", 1)
        params.setdefault("keepalives_idle", 10)
        params.setdefault("keepalives_interval", 3)
        params.setdefault("keepalives_count", 3)
        params.setdefault("tcp_user_timeout", 10_000)
        return psycopg.connect(**params)

    def held(self) -> bool:
        """True while this process holds the lock: its connection answers."""
        if self.conn is None:
            return False
        try:
            self.conn.execute("SELECT 1")
            return True
        except Exception as exc:  # noqa: BLE001 - any failure means the session (and lock) is gone
            logger.warning(
                "beat lock: connection lost (%s); not scheduling until it is taken again", type(exc).__name__
            )
            self.release()
            return False

    def acquire(self) -> bool:
        """Try once, without waiting. False if another beat holds it or the database is away."""
        try:
            if self.conn is None:
                self.conn = self._connect()
            row = self.conn.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY]).fetchone()
        except Exception as exc:  # noqa: BLE001
            logger.warning("beat lock: cannot reach the database (%s); retrying", type(exc).__name__)
            self.release()
            return False
        return bool(row and row[0])

    def release(self) -> None:
        """Unlock and close (a broken connection's session, and lock, are gone already)."""
        if self.conn is not None:
            # The unlock is synchronous: a standby can take the lock at its next try, without
            # waiting for the server to end the closed session.
            with contextlib.suppress(Exception):
                self.conn.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None


class SingleBeatScheduler(DatabaseScheduler):
    """DatabaseScheduler that dispatches only while it holds the beat lock (module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.beat_lock = BeatLock()
        self.is_leader = False
        self._warned_unsupported = False
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not self.beat_lock.supported:
            if not self._warned_unsupported:
                self._warned_unsupported = True
                logger.warning("beat lock: needs PostgreSQL; on this database run exactly one beat")
            return super().tick(*args, **kwargs)
        if self.is_leader and not self.beat_lock.held():
            self.is_leader = False
            self.sync()  # write what this beat ran, for the beat that takes over
        if not self.is_leader:
            if not self.beat_lock.acquire():
                return self.max_interval
            self.is_leader = True
            logger.info("beat lock: taken; this beat schedules the periodic tasks")
            # Another beat may have run entries since this process read them: read them afresh.
            self._initial_read = True
            self._heap = None
        return super().tick(*args, **kwargs)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.beat_lock.release()
            self.is_leader = False
