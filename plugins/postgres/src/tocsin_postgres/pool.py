"""Connections and the threads that use them: a psycopg connection pool, one job per storage call.

tocsin-sql's queries are plain synchronous functions of a `Database` (written once for every dialect), so
each storage method is one job run on a worker thread with a pooled connection: psycopg releases the GIL
while it waits on the network, so jobs run in parallel, one round trip per statement, and an awaited call
costs one hop to a thread and back whatever it does.

A write job runs in one transaction that starts with one statement doing three things: it lifts the read
deadline, takes a transaction-scoped advisory lock (`GENERAL`, `LOGS` or `METRICS`, per schema), and queues
a `pg_notify` on the schema's change channel (sent at commit, dropped on rollback). The locks make the
writers of one kind take turns across every process sharing the database, which the shared queries assume
(log ids are handed out after reading the largest stored one; sketches are merged in Python after reading
the stored ones; claiming deliveries reads, then updates): the same guarantee SQLite's single write lock
gives, but per kind, so logs, metrics and alerts are written side by side. Reads need no lock and run
under `statement_timeout` (query_timeout).
"""

from __future__ import annotations

import asyncio
import itertools
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from psycopg_pool import ConnectionPool
from tocsin_sql.database import StatementCache

from tocsin.ext import Secret, StorageError
from tocsin_postgres.config import PostgresConfig
from tocsin_postgres.database import PostgresDatabase, translate

Job = Callable[[PostgresDatabase], Any]

GENERAL, LOGS, METRICS, MIGRATIONS = 1, 2, 3, 4
"""Advisory lock keys (the second half of a two-part key whose first half is the schema's)."""

_BEGIN_WRITE = "SELECT set_config('statement_timeout', '0', true), pg_advisory_xact_lock(%s, %s), pg_notify(%s, %s)"


def lock_space(schema: str) -> int:
    """The first half of this schema's advisory lock keys (a signed 32-bit hash of its name)."""
    return zlib.crc32(schema.encode()) - 2**31


def channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel on which writers to this schema announce their commits."""
    return f"tocsin_changes.{schema}"


def connection_options(config: PostgresConfig) -> dict[str, Any]:
    """Keyword arguments of every connection: autocommit (transactions are explicit), search_path, timeouts."""
    settings = {
        "search_path": config.schema,
        "statement_timeout": f"{round(float(config.query_timeout) * 1000)}",
        "lock_timeout": f"{round(float(config.lock_timeout) * 1000)}",
        "application_name": f"tocsin:{config.schema}",  # what pg_stat_activity shows
    }
    return {
        "autocommit": True,
        "connect_timeout": max(1, round(float(config.connect_timeout))),
        "options": " ".join(f"-c {name}={value}" for name, value in settings.items()),
    }


class Pool:
    """The connection pool, the worker threads, and the async calls that run jobs on them."""

    def __init__(self, config: PostgresConfig, statements: StatementCache, instance: str) -> None:
        self.config = config
        self.dsn: Secret = config.dsn
        self.statements = statements
        self.instance = instance
        self._space = lock_space(config.schema)
        self._channel = channel(config.schema)
        self._commits = itertools.count(1)
        self.commits = 0
        self._pool: ConnectionPool | None = None
        self._threads: ThreadPoolExecutor | None = None

    def start(self) -> None:
        """Open the pool's first connections (raising StorageUnavailable when the server cannot be reached)."""
        pool = ConnectionPool(
            self.dsn.reveal(), min_size=self.config.pool_min, max_size=max(self.config.pool_min, self.config.pool_max),
            kwargs=connection_options(self.config), open=False, timeout=float(self.config.connect_timeout),
            name="tocsin",
        )
        try:
            pool.open(wait=True, timeout=float(self.config.connect_timeout))
        except BaseException as error:
            pool.close()
            raise translate(error, "connecting", self.dsn) from None
        self._pool = pool
        self._threads = ThreadPoolExecutor(self.config.pool_max, thread_name_prefix="tocsin-postgres")

    def stop(self) -> None:
        """Finish running jobs and close every connection. Safe to call twice."""
        threads, self._threads = self._threads, None
        pool, self._pool = self._pool, None
        if threads is not None:
            threads.shutdown(wait=True)
        if pool is not None:
            pool.close()

    async def write(self, job: Job, doing: str, lock: int = GENERAL) -> Any:
        """Run a job in one write transaction holding the advisory lock `lock`; the result after COMMIT."""
        return await self._submit(self._write, job, doing, lock)

    async def read(self, job: Job, doing: str) -> Any:
        """Run a job on a pooled connection, each statement under the query deadline."""
        return await self._submit(self._read, job, doing, 0)

    async def _submit(self, run: Callable[..., Any], job: Job, doing: str, lock: int) -> Any:
        threads = self._threads
        if threads is None:
            raise StorageError(f"cannot {doing}: the PostgreSQL storage is not open")
        return await asyncio.get_running_loop().run_in_executor(threads, run, job, doing, lock)

    def _write(self, job: Job, doing: str, lock: int) -> Any:
        pool = self._pool
        if pool is None:
            raise StorageError(f"cannot {doing}: the PostgreSQL storage is not open")
        db: PostgresDatabase | None = None
        try:
            with pool.connection() as connection, connection.transaction():
                db = PostgresDatabase(connection, self.statements)
                connection.execute(_BEGIN_WRITE, (self._space, lock, self._channel, self.instance))
                result = job(db)
        except BaseException as error:
            raise translate(error, doing, self.dsn) from None
        self.commits = next(self._commits)
        return result

    def _read(self, job: Job, doing: str, _: int) -> Any:
        pool = self._pool
        if pool is None:
            raise StorageError(f"cannot {doing}: the PostgreSQL storage is not open")
        try:
            with pool.connection() as connection:
                return job(PostgresDatabase(connection, self.statements))
        except BaseException as error:
            raise translate(error, doing, self.dsn) from None

    def run_locked(self, job: Job, doing: str) -> Any:
        """Run a job synchronously (in the caller's thread) in one transaction under the migrations lock: what
        opening does, so that replicas starting together create or upgrade the schema once."""
        pool = self._pool
        assert pool is not None
        try:
            with pool.connection() as connection, connection.transaction():
                connection.execute("SELECT set_config('statement_timeout', '0', true), pg_advisory_xact_lock(%s, %s)",
                                   (self._space, MIGRATIONS))
                return job(PostgresDatabase(connection, self.statements))
        except BaseException as error:
            raise translate(error, doing, self.dsn) from None
