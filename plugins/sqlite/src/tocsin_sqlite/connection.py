"""One configured sqlite3 connection: pragmas, the sketch-merge function, and a guard against runaway queries.

Every connection is owned by one thread (`tocsin_sqlite.workers`) and runs in autocommit mode, so
transactions are explicit: `BEGIN IMMEDIATE` for writes (a deferred transaction that reads first and then
writes can fail at once with SQLITE_BUSY_SNAPSHOT, without waiting for busy_timeout; RELIABILITY.md
section 1), plain `BEGIN` for a read that needs one snapshot across statements.

The `Guard` is SQLite's progress handler: it stops a statement that runs past a deadline (QueryError) or
past a budget of virtual-machine steps (used to count matches only while that is cheap).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from tocsin_sql.database import Database, StatementCache
from tocsin_sql.dialect import SKETCH_MERGE_FUNCTION, merge_sketch_blobs

from tocsin.ext import QueryError, StorageError, StorageUnavailable, UnstorableRecord

PROGRESS_STEPS = 1000
"""SQLite virtual-machine instructions between two calls of the progress handler."""

_TRANSIENT = ("SQLITE_IOERR", "SQLITE_FULL", "SQLITE_CANTOPEN", "SQLITE_PROTOCOL")


def bind_fast() -> None:
    """Bind None and bytes through an adapter lookup that succeeds, as ints and strs already are.

    Python's sqlite3 (3.11) binds an int, float or str at once, but first tries to adapt any other value, and
    for None and bytes that lookup ends in two caught AttributeErrors per parameter: ~0.7 us each, a third of
    an 11-column log insert with four NULLs (100k rows: 0.64 s -> 0.40 s). An identity adapter, found in the
    adapters dict, gives the same NULL or BLOB without the exceptions. Adapters are process-wide, so one the
    application registered for these types is left alone.
    """
    identities: dict[type, Any] = {type(None): {}.get, bytes: bytes}  # both return their argument, in C
    for kind, identity in identities.items():
        if (kind, sqlite3.PrepareProtocol) not in sqlite3.adapters:
            sqlite3.register_adapter(kind, identity)


class Guard:
    """The progress handler: interrupts the running statement past a deadline or a step budget."""

    __slots__ = ("budget", "deadline", "exhausted", "expired", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.deadline = float("inf")
        self.budget: int | None = None
        self.expired = False
        self.exhausted = False

    def __call__(self) -> int:
        if self.budget is not None:
            self.budget -= 1
            if self.budget < 0:
                self.exhausted = True
                return 1
        if time.monotonic() > self.deadline:
            self.expired = True
            return 1
        return 0

    @contextmanager
    def deadline_for(self) -> Iterator[None]:
        """Arm the deadline (`timeout` from now) around one job."""
        self.deadline, self.expired = time.monotonic() + self.timeout, False
        try:
            yield
        finally:
            self.deadline = float("inf")

    @contextmanager
    def limited(self, steps: int) -> Iterator[None]:
        """Allow about `steps` x PROGRESS_STEPS instructions for the statements run inside."""
        self.budget, self.exhausted = steps, False
        try:
            yield
        finally:
            self.budget = None


class SketchMerge:
    """The `tocsin_sketch_merge(stored, new)` SQL function; remembers why it last failed."""

    def __init__(self) -> None:
        self.error: str | None = None

    def __call__(self, stored: bytes | None, new: bytes | None) -> bytes | None:
        try:
            return merge_sketch_blobs(stored, new)
        except Exception as error:
            self.error = str(error)
            raise


class SQLiteDatabase(Database):
    """tocsin-sql's Database over one sqlite3 connection."""

    def __init__(self, connection: sqlite3.Connection, statements: StatementCache, guard: Guard,
                 merge: SketchMerge, path: str) -> None:
        super().__init__(statements)
        self.connection = connection
        self.guard = guard
        self.merge = merge
        self.path = path

    def fetchall(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run a query; all rows."""
        return self.connection.execute(sql, args).fetchall()

    def execute(self, sql: str, args: Sequence[Any]) -> int:
        """Run a statement; rows changed."""
        return self.connection.execute(sql, args).rowcount

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run a statement per row."""
        self.connection.executemany(sql, rows)

    def close(self) -> None:
        """Close the connection (rolling back anything left open)."""
        self.connection.close()

    def translate(self, error: BaseException, doing: str) -> BaseException:
        """The tocsin error for a failure while `doing` something; tocsin errors and bugs pass through."""
        if not isinstance(error, sqlite3.Error):
            return error
        if self.guard.expired:
            return QueryError(
                f"{doing} ran past its deadline of {self.guard.timeout:g} s (query_timeout); "
                "narrow it with a time range or more filters"
            )
        if self.merge.error is not None:
            message, self.merge.error = self.merge.error, None
            return StorageError(f"{doing} failed: cannot merge rollups: {message}")
        name = getattr(error, "sqlite_errorname", "")
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return StorageUnavailable(
                f"{doing} failed: {self.path} is locked by another writer ({error}); busy_timeout ran out. "
                "Is another process writing to this file?"
            )
        if name.startswith(_TRANSIENT):  # the disk, not the data: the same write may work later
            return StorageUnavailable(f"{doing} failed on {self.path}: {error} ({name})")
        if isinstance(error, sqlite3.IntegrityError | sqlite3.DataError | sqlite3.InterfaceError):
            return UnstorableRecord(f"{doing} failed on {self.path}: {error} ({name or type(error).__name__})")
        return StorageError(f"{doing} failed on {self.path}: {error} ({name or type(error).__name__})")


def connect(
    path: str,
    *,
    busy_timeout: float,
    synchronous: str,
    cache_mb: int,
    mmap_mb: int,
    wal_limit_bytes: int,
    query_timeout: float,
    reader: bool,
) -> tuple[sqlite3.Connection, Guard, SketchMerge]:
    """Open one connection with tocsin's pragmas; StorageError if the file cannot be used."""
    bind_fast()
    try:
        connection = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False, cached_statements=512
        )
    except sqlite3.Error as error:
        raise StorageError(f"cannot open SQLite database {path}: {error}") from None
    try:
        pragmas = [
            f"busy_timeout = {round(busy_timeout * 1000)}",
            f"cache_size = {-cache_mb * 1024}",
            f"mmap_size = {mmap_mb * 2**20}",
            "temp_store = MEMORY",
            f"synchronous = {synchronous}",
        ]
        if reader:
            pragmas.append("query_only = 1")
        else:
            pragmas += [f"journal_size_limit = {wal_limit_bytes}", "wal_autocheckpoint = 1000"]
        for pragma in pragmas:
            connection.execute(f"PRAGMA {pragma}")
        guard = Guard(query_timeout)
        connection.set_progress_handler(guard, PROGRESS_STEPS)
        merge = SketchMerge()
        connection.create_function(SKETCH_MERGE_FUNCTION, 2, merge, deterministic=True)
    except sqlite3.Error as error:
        connection.close()
        raise StorageError(f"cannot set up SQLite database {path}: {error}") from None
    return connection, guard, merge


def enable_wal(connection: sqlite3.Connection, path: str, new: bool) -> None:
    """Incremental auto-vacuum (new files only) and WAL; StorageError where WAL is impossible."""
    try:
        if new:
            connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
        (mode,) = connection.execute("PRAGMA journal_mode = WAL").fetchone()
    except sqlite3.Error as error:
        raise StorageError(f"cannot switch {path} to WAL mode: {error}") from None
    if mode.lower() != "wal":
        raise StorageError(f"{path} refused WAL mode (journal_mode is {mode}); tocsin needs WAL (a local disk)")
