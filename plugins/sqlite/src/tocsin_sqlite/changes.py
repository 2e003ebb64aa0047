"""The change marker of a SQLite file: `PRAGMA data_version` on a connection of its own, made a counter.

`PRAGMA data_version` answers, on one connection, a number that differs from its last answer whenever another
connection (in this process or any other) committed a change to the file since; it is per connection, and a
connection's own commits do not move it. So the marker has a connection that never writes: every commit, of
this process's writer as of other processes, moves it, and reading it costs no write and no lock a writer
waits for (in WAL mode it looks at the shared-memory index). Each change seen adds one to a counter, so the
marker only grows even though data_version itself promises only to differ.

The alternative, a counter row bumped in every write transaction, would add an UPDATE of one hot row to each
write and still have to be read by polling; data_version costs the writers nothing.
"""

from __future__ import annotations

import sqlite3
import threading

from tocsin.ext import StorageError, StorageUnavailable


class ChangeWatch:
    """One read-only connection polled for `PRAGMA data_version`; thread-safe (callers run it off the loop)."""

    def __init__(self, path: str, busy_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._version: int | None = None
        self._count = 0

    def open(self) -> None:
        """Connect and take the first reading (the counter starts at 0)."""
        try:
            connection = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                         check_same_thread=False)
            connection.execute("PRAGMA query_only = 1")
        except sqlite3.Error as error:
            raise StorageError(f"cannot open {self.path} to watch for changes: {error}") from None
        with self._lock:
            self._connection = connection
            self._version = self._read(connection)

    def marker(self) -> int:
        """The counter after one more reading: one more than last time when the file changed since."""
        with self._lock:
            connection = self._connection
            if connection is None:
                raise StorageError(f"the SQLite storage at {self.path} is not open")
            version = self._read(connection)
            if version != self._version:
                self._version = version
                self._count += 1
            return self._count

    def _read(self, connection: sqlite3.Connection) -> int:
        try:
            # fetchall steps the statement to its end, so no read transaction stays open (it would hold a WAL
            # snapshot and keep checkpoints from truncating the WAL).
            return connection.execute("PRAGMA data_version").fetchall()[0][0]
        except sqlite3.Error as error:
            raise StorageUnavailable(f"reading the change marker of {self.path} failed: {error}") from None

    def close(self) -> None:
        """Close the connection. Safe to call twice."""
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
