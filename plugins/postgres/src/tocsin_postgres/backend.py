"""`PostgresBackend`: tocsin's storage on PostgreSQL, shared by any number of processes (replicas).

Each protocol method checks and encodes its input on the caller's thread, then runs one job on a pooled
connection (`tocsin_postgres.pool`). The queries are tocsin-sql's, written once for every SQL dialect; log
search is this plugin's (`tocsin_postgres.search`, tsvector + GIN), logs are written with COPY, sketches
are merged in Python (`tocsin_postgres.sketches`), and the change marker counts LISTEN/NOTIFY messages
(`tocsin_postgres.changes`). Opening creates or upgrades the schema under an advisory lock, so replicas
starting together run each migration once.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import Sequence
from typing import Any

from psycopg import sql as pg_sql
from tocsin_sql import logs, metrics, migrations
from tocsin_sql.database import StatementCache
from tocsin_sql.logkeys import LogKeys
from tocsin_sql.records import SqlRecords
from tocsin_sql.retention import Sweep
from tocsin_sql.schema import ROW_COUNTED
from tocsin_sql.transfer import SqlTransfer

from tocsin.ext import (
    RETENTION_SIGNALS,
    LogHit,
    LogQuery,
    LogRecord,
    MetricRollup,
    Page,
    Retention,
    StorageError,
    StorageStats,
)
from tocsin_postgres import partitions, search
from tocsin_postgres.changes import ChangeListener
from tocsin_postgres.config import PostgresConfig
from tocsin_postgres.database import PostgresDatabase
from tocsin_postgres.dialect import PostgresDialect
from tocsin_postgres.dsn import display
from tocsin_postgres.pool import GENERAL, LOGS, METRICS, Pool, channel, connection_options
from tocsin_postgres.sketches import premerge
from tocsin_postgres.storage import PostgresStorage

_SWEEP_LOCKS = {"metrics": METRICS, "logs": LOGS}
_PARTITIONED = {"metrics": "metric_rollups", "logs": "logs"}


class PostgresBackend(PostgresStorage, SqlTransfer, SqlRecords):
    """Every signal in one PostgreSQL schema: what `PostgresStorage(config)` builds."""

    def __init__(self, config: PostgresConfig | None = None) -> None:
        self.config = config or PostgresConfig()
        self.where = display(self.config.dsn)  # checks the DSN can be read, without ever showing its password
        if float(self.config.partition) < 3600:
            raise StorageError(f"storage partition must be at least 1h, got {float(self.config.partition):g} s")
        self._width_s = round(float(self.config.partition))
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._statements = StatementCache(PostgresDialect(self._width_s))
        self._log_keys = LogKeys()  # used only under the logs lock, by one job at a time
        self._pool: Pool | None = None
        self._changes: ChangeListener | None = None
        self.schema_found: int | None = None

    # -- lifecycle --------------------------------------------------------------------------------------------
    def _prepare(self, db: PostgresDatabase) -> migrations.Outcome:
        """Create the schema if missing, then create or upgrade the tables (under the migrations lock)."""
        schema = pg_sql.Identifier(self.config.schema)
        db.connection.execute(pg_sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
        outcome = migrations.upgrade(db, time.time_ns(), f"{self.where} schema {self.config.schema}")
        partitions.ensure(db, time.time_ns(), self._width_s)
        return outcome

    def _start(self) -> tuple[Pool, ChangeListener]:
        pool = Pool(self.config, self._statements, self.instance)
        pool.start()
        try:
            outcome = pool.run_locked(self._prepare, f"opening {self.where}")
            changes = ChangeListener(self.config.dsn, connection_options(self.config), channel(self.config.schema),
                                     self.instance)
            changes.open()
        except BaseException:
            pool.stop()
            raise
        self.schema_found = outcome.found
        return pool, changes

    async def open(self) -> None:
        """Connect, create or upgrade the schema (once across replicas), and listen for other processes' writes."""
        if self._pool is None:
            self._pool, self._changes = await asyncio.to_thread(self._start)

    async def close(self) -> None:
        """Finish running jobs and close every connection. Safe to call twice."""
        pool, self._pool = self._pool, None
        changes, self._changes = self._changes, None
        if changes is not None:
            changes.close()
        if pool is not None:
            await asyncio.to_thread(pool.stop)

    def _running(self) -> Pool:
        if self._pool is None:
            raise StorageError(f"the PostgreSQL storage at {self.where} is not open")
        return self._pool

    async def _write(self, job: Any, doing: str, lock: int = GENERAL) -> Any:
        return await self._running().write(job, doing, lock)

    async def _read(self, job: Any, doing: str) -> Any:
        return await self._running().read(job, doing)

    # -- writes -------------------------------------------------------------------------------------------
    async def write_metrics(self, rollups: Sequence[MetricRollup]) -> None:
        """Store rollups; a rollup for an existing (series, start_ns) is merged into it."""
        if rollups:
            prepared = metrics.prepare(rollups)
            await self._write(lambda db: metrics.write(db, premerge(db, prepared)),
                              f"write {len(rollups)} metric rollups", METRICS)

    async def write_logs(self, records: Sequence[LogRecord]) -> None:
        """Append log records; ids are time keys, so they grow with time (see tocsin_sql.logkeys)."""
        if records:
            rows = [logs.encode(record) for record in records]
            await self._write(lambda db: logs.insert(db, rows, self._log_keys), f"write {len(rows)} log records",
                              LOGS)

    # -- logs -------------------------------------------------------------------------------------------------
    async def search_logs(self, query: LogQuery) -> Page[LogHit]:
        """Logs matching the query, newest first, with a total (None past search.TOTAL_LIMIT matches)."""
        planned = search.plan(query)
        return await self._read(lambda db: search.run(db, planned, query.end_ns), "search logs")

    # -- housekeeping -------------------------------------------------------------------------------------
    async def sweep(self, retention: Retention, now_ns: int) -> dict[str, int]:
        """Delete what is older than each signal's retention; rows per signal. Whole time partitions of logs and
        metric rollups are dropped first, the rest deleted a chunk per write transaction; then the partitions of
        the coming windows are created."""
        deleted = dict.fromkeys(RETENTION_SIGNALS, 0)
        for signal in RETENTION_SIGNALS:
            seconds = getattr(retention, signal)
            if seconds is None:
                continue
            cutoff, lock = now_ns - round(seconds * 1e9), _SWEEP_LOCKS.get(signal, GENERAL)
            dropped = 0
            if signal in _PARTITIONED:
                table = _PARTITIONED[signal]
                dropped = await self._write(lambda db, t=table, c=cutoff: partitions.drop_before(db, t, c),
                                            f"drop old {signal} partitions", lock)
            sweep = Sweep(signal, cutoff)
            while not await self._write(sweep.step, f"sweep old {signal}", lock):
                pass
            deleted[signal] = sweep.deleted + dropped
        await self._write(lambda db: partitions.ensure(db, now_ns, self._width_s), "create partitions ahead")
        return deleted

    async def stats(self) -> StorageStats:
        """Rows per table, and the bytes the schema's tables and indexes take."""

        def count(db: PostgresDatabase) -> StorageStats:
            rows = {table.name: db.fetch(f"SELECT count(*) FROM {table.name}")[0][0] for table in ROW_COUNTED}
            (size,) = db.fetch("SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                               "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'")[0]
            return StorageStats(rows=rows, bytes=int(size))

        return await self._read(count, "count rows")

    # -- change feed ------------------------------------------------------------------------------------------
    async def change_marker(self) -> int:
        """This instance's commits plus the NOTIFY messages of every other process's (tocsin_postgres.changes)."""
        changes, pool = self._changes, self._pool
        if changes is None or pool is None:
            raise StorageError(f"the PostgreSQL storage at {self.where} is not open")
        return await asyncio.to_thread(changes.marker, pool.commits)
