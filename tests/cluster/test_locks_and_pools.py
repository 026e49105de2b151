"""In this process, against this run's test database: the beat lock (askpro/beat.py) admits one
holder and passes to the next when the holder's connection goes; the connection pool
(askpro/pgbackend) replaces connections the server dropped instead of failing queries on them."""

from __future__ import annotations

import threading

import psycopg
import pytest
from django.db import connection, connections

from askpro.beat import APPLICATION_NAME, BeatLock

from .conftest import database_url
from .group import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def terminate(where: str = "", params: tuple = ()) -> int:
    """pg_terminate_backend on this run's test database only (never another database's)."""
    admin = database_url().replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
            f"WHERE datname = %s AND pid <> pg_backend_pid() {where}",
            (connection.settings_dict["NAME"], *params),
        ).fetchone()[0]


def test_it_admits_one_beat_lock_holder_and_passes_it_on_when_the_holder_goes():
    first, second = BeatLock(), BeatLock()
    try:
        assert first.acquire() is True
        assert second.acquire() is False  # a second beat started by mistake stays on standby
        assert first.held() is True
        assert second.acquire() is False
        # The holder's session ends (a crash, a failover, an operator): the lock goes with it.
        assert (
            terminate(
                "AND application_name = %s AND pid = %s", (APPLICATION_NAME, first.conn.info.backend_pid)
            )
            == 1
        )
        assert first.held() is False
        # The server ends the session a moment later; a standby tries again every max interval.
        wait_for(second.acquire, 10, "the standby takes the lock")
        assert first.acquire() is False
    finally:
        first.release()
        second.release()


def test_it_lets_the_standby_take_a_released_lock():
    first, second = BeatLock(), BeatLock()
    try:
        assert first.acquire() and not second.acquire()
        first.release()  # a beat shutting down
        assert second.acquire() is True
    finally:
        first.release()
        second.release()


def test_it_replaces_pooled_connections_the_server_dropped():
    assert connections["default"].settings_dict["ENGINE"] == "askpro.pgbackend"

    def query(results: list, barrier: threading.Barrier | None = None) -> None:
        try:
            if barrier:
                barrier.wait()
            with connections["default"].cursor() as cursor:
                cursor.execute("SELECT 1")
                results.append(cursor.fetchone()[0])
        except Exception as exc:  # noqa: BLE001 - the assertion names it
            results.append(exc)
        finally:
            connections["default"].close()  # back to the pool

    # Four threads at once: the pool holds (at least) four connections afterwards.
    warm: list = []
    barrier = threading.Barrier(4)
    threads = [threading.Thread(target=query, args=(warm, barrier)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert warm == [1, 1, 1, 1]
    connection.close()
    assert terminate() >= 4

    after: list = []
    for _ in range(6):  # one after another: each would take a dead connection without the check
        thread = threading.Thread(target=query, args=(after,))
        thread.start()
        thread.join()
    assert after == [1] * 6
