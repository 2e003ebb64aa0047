"""The change marker over LISTEN/NOTIFY: this process's commits plus the notifications of everyone else's.

Every write transaction queues `pg_notify(channel, instance)` (`tocsin_postgres.pool`), which PostgreSQL
delivers at commit to every connection listening on the schema's channel, in every process on every host.
The marker is the count of this instance's own commits (known the moment a write returns, so it has moved
before the caller asks) plus the notifications received from other instances (its own, which arrive a
little later, are skipped: counting them would move the marker during reads). Reading it drains what the
listening connection has received, without a query: nothing is sent to the server, so polling it several
times a second is free.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from psycopg import sql as pg_sql

from tocsin.ext import Secret, StorageError
from tocsin_postgres.database import translate
from tocsin_postgres.dsn import display


class ChangeListener:
    """One autocommit connection LISTENing on the schema's channel; thread-safe (callers run it off the loop)."""

    def __init__(self, dsn: Secret, options: dict[str, Any], channel: str, instance: str) -> None:
        self.dsn = dsn
        self.options = options
        self.channel = channel
        self.instance = instance
        self._lock = threading.Lock()
        self._connection: psycopg.Connection[Any] | None = None
        self._closed = False
        self._foreign = 0

    def open(self) -> None:
        """Connect and LISTEN (notifications from now on are counted)."""
        with self._lock:
            self._connection = self._connect()

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            connection = psycopg.connect(self.dsn.reveal(), **self.options)
            connection.execute(pg_sql.SQL("LISTEN {}").format(pg_sql.Identifier(self.channel)))
        except psycopg.Error as error:
            raise translate(error, "listening for changes", self.dsn) from None
        return connection

    def marker(self, own_commits: int) -> int:
        """Own commits plus the other instances' notifications received so far."""
        with self._lock:
            if self._closed:
                raise StorageError(f"the PostgreSQL storage at {display(self.dsn)} is not open")
            connection = self._connection
            if connection is None or connection.closed:  # lost: listen again, and count that as a change
                self._connection = connection = self._connect()
                self._foreign += 1
            try:
                for notice in connection.notifies(timeout=0):
                    if notice.payload != self.instance:
                        self._foreign += 1
            except psycopg.Error as error:
                connection.close()
                raise translate(error, "reading the change marker", self.dsn) from None
            return own_commits + self._foreign

    def close(self) -> None:
        """Close the connection. Safe to call twice."""
        with self._lock:
            self._closed = True
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
