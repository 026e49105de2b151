"""Django's PostgreSQL backend, with a connection pool that recovers at once when the server has
dropped its connections (a restart, a failover to a replica, pg_terminate_backend).

psycopg's pool hands out idle connections without looking at them, so each one the server
dropped would fail one request; Django's own check (CONN_HEALTH_CHECKS) finds them one at a time,
sleeping 0, 1, 2, 4 … s between dead ones, which outlasts the pool timeout once a process holds
more than a few. Here a connection is checked (one empty round trip) when it is taken from the
pool; the first dead one makes the pool check all its idle connections at once (dropping the dead
and opening new ones), and the request gets a fresh connection. Only statements in flight when
the server dropped them fail (docs/high-availability.md#postgresql).
"""

from __future__ import annotations

import logging

import psycopg
from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool

logger = logging.getLogger("askpro.db")
ATTEMPTS = 3


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        pool = self.pool
        if pool is None:
            return connection
        for _ in range(ATTEMPTS):
            try:
                ConnectionPool.check_connection(connection)
                return connection
            except psycopg.Error as exc:
                logger.warning(
                    "database connection from the pool was dropped by the server (%s); "
                    "checking every idle connection",
                    type(exc).__name__,
                )
                pool.putconn(connection)  # broken: the pool discards it and opens another
                pool.check()
                connection = super().get_new_connection(conn_params)
        return connection
