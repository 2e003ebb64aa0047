"""tocsin-sql's `Database` over one psycopg connection, and PostgreSQL errors as tocsin's error tree.

A job (one storage method's statements) runs on a connection borrowed from the pool (`tocsin_postgres.pool`),
in one transaction; every statement is a prepared statement after a few uses (psycopg's prepare
threshold), so the shared queries run without re-planning. Bulk log rows go through COPY (`copy_rows`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql as pg_sql
from tocsin_sql.database import Database, StatementCache

from tocsin.ext import QueryError, Secret, StorageError, StorageUnavailable, UnstorableRecord
from tocsin_postgres.dsn import display, scrub


class PostgresDatabase(Database):
    """tocsin-sql's Database over one psycopg connection (in a transaction the pool opened)."""

    def __init__(self, connection: psycopg.Connection[Any], statements: StatementCache) -> None:
        super().__init__(statements)
        self.connection = connection
        self.merge_error: str | None = None

    def fetchall(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run a query; all rows."""
        cursor = self.connection.execute(sql, as_stored(args))
        return cursor.fetchall() if cursor.description is not None else []

    def fetch_planned(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run a query planned for these very arguments, never prepared: psycopg prepares a statement after a few
        runs, and a prepared statement's generic plan cannot see how rare a searched word is (it would walk the
        whole primary key looking for a word found nowhere)."""
        return self.connection.execute(sql, as_stored(args), prepare=False).fetchall()

    def execute(self, sql: str, args: Sequence[Any]) -> int:
        """Run a statement; rows changed."""
        return self.connection.execute(sql, as_stored(args)).rowcount

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run a statement per row (psycopg pipelines them: one round trip for the batch)."""
        rows = list(rows)
        if rows:
            with self.connection.cursor() as cursor:
                cursor.executemany(sql, rows)

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Append rows to a table with COPY FROM STDIN (text format): the fastest bulk path PostgreSQL has."""
        statement = pg_sql.SQL("COPY {} ({}) FROM STDIN").format(
            pg_sql.Identifier(table), pg_sql.SQL(", ").join(map(pg_sql.Identifier, columns))
        )
        with self.connection.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)


def as_stored(args: Sequence[Any]) -> Sequence[Any]:
    """Statement arguments as PostgreSQL stores text: its text cannot hold a NUL, so a NUL in a string (or a list
    of strings) becomes U+FFFD, as `tocsin.signals.sanitize` makes it for a batch whose write failed. A query
    then finds what such a write stored and matches nothing else, a delete by such an id deletes nothing, and
    a saved alert or silence keeps its other characters, instead of failing. (Bulk log rows go through COPY
    and are cleaned by the batch writer, which counts them.)"""
    if not any(_has_nul(arg) for arg in args):
        return args
    return [_nul_free(arg) for arg in args]


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    return isinstance(value, list) and any(_has_nul(item) for item in value)


def _nul_free(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_nul_free(item) for item in value]
    return value


def translate(error: BaseException, doing: str, dsn: Secret) -> BaseException:
    """The tocsin error for a failure while `doing` something; tocsin errors and bugs pass through.

    A lost or refused connection, a lock wait past lock_timeout, a serialization failure, a full disk or too
    many connections are StorageUnavailable (the same write may work later: BatchWriter retries it); a value
    no column can hold is UnstorableRecord (BatchWriter cleans the batch, then drops what still fails); a read
    past query_timeout is a QueryError. The message names the database without its password.
    """
    where = display(dsn)
    if isinstance(error, ValueError) and "sketch" in str(error):
        return StorageError(f"{doing} failed: cannot merge rollups: {error}")
    if isinstance(error, pg_errors.QueryCanceled) and not isinstance(error, pg_errors.LockNotAvailable):
        return QueryError(f"{doing} ran past its deadline (query_timeout) on {where}; "
                          "narrow it with a time range or more filters")
    if isinstance(error, psycopg.Error) or _is_pool_error(error):
        message = scrub(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__, dsn)
        kind = type(error).__name__
        if isinstance(error, psycopg.OperationalError | pg_errors.LockNotAvailable | pg_errors.SerializationFailure
                      | pg_errors.DeadlockDetected | pg_errors.DiskFull | pg_errors.InsufficientResources
                      | pg_errors.TooManyConnections | pg_errors.AdminShutdown) or _is_pool_error(error):
            return StorageUnavailable(f"{doing} failed: {where} is unavailable: {message} ({kind})")
        if isinstance(error, psycopg.DataError | psycopg.IntegrityError | psycopg.ProgrammingError
                      ) and not isinstance(error, pg_errors.UndefinedTable | pg_errors.UndefinedColumn
                                           | pg_errors.SyntaxError):
            return UnstorableRecord(f"{doing} failed on {where}: {message} ({kind})")
        return StorageError(f"{doing} failed on {where}: {message} ({kind})")
    if isinstance(error, OverflowError | UnicodeEncodeError):
        return UnstorableRecord(f"{doing} failed on {where}: {error} ({type(error).__name__})")
    return error


def _is_pool_error(error: BaseException) -> bool:
    from psycopg_pool import PoolTimeout, TooManyRequests

    return isinstance(error, PoolTimeout | TooManyRequests)
