"""`SQLiteBackend`: tocsin's embedded default storage backend, one SQLite file in WAL mode.

Each protocol method checks and encodes its input on the caller's thread (so bad input fails before any
transaction starts and encoding overlaps with SQLite work), then runs one job on the writer or on a reader
(`tocsin_sqlite.workers`). The queries themselves are tocsin-sql's, written once for every SQL dialect;
log search is SQLite's own (`tocsin_sqlite.search`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
from tocsin_sqlite import search
from tocsin_sqlite.changes import ChangeWatch
from tocsin_sqlite.config import SQLiteConfig
from tocsin_sqlite.connection import SQLiteDatabase, connect, enable_wal
from tocsin_sqlite.dialect import SQLiteDialect
from tocsin_sqlite.maintenance import Checkpointer, FreePageRelease, merge_index_step
from tocsin_sqlite.storage import SQLiteStorage
from tocsin_sqlite.workers import Pool

_SYNCHRONOUS = {"normal": "NORMAL", "strict": "FULL"}


class SQLiteBackend(SQLiteStorage, SqlTransfer, SqlRecords):
    """Every signal in one SQLite file (WAL, FTS5 log search): what `SQLiteStorage(config)` builds."""

    def __init__(self, config: SQLiteConfig | None = None) -> None:
        self.config = config or SQLiteConfig()
        self.path = os.fspath(self.config.path)
        self._dialect = SQLiteDialect()
        self._statements = StatementCache(self._dialect)
        self._checkpointer = Checkpointer(self.path, self.config.wal_limit_mb * 2**20, float(self.config.busy_timeout))
        self._pool: Pool | None = None
        self._changes: ChangeWatch | None = None
        self._log_keys = LogKeys()  # the writer thread's memory of the newest log ids (only it uses this)
        self.schema_found: int | None = None

    # -- lifecycle --------------------------------------------------------------------------------------------
    def _connect(self, reader: bool) -> SQLiteDatabase:
        config = self.config
        connection, guard, merge = connect(
            self.path,
            busy_timeout=float(config.busy_timeout),
            synchronous=_SYNCHRONOUS[config.durability],
            cache_mb=config.cache_mb,
            mmap_mb=config.mmap_mb,
            wal_limit_bytes=config.wal_limit_mb * 2**20,
            query_timeout=float(config.query_timeout),
            reader=reader,
        )
        db = SQLiteDatabase(connection, self._statements, guard, merge, self.path)
        if not reader:
            try:
                self._prepare_file(db)
            except BaseException:
                db.close()
                raise
        return db

    def _prepare_file(self, db: SQLiteDatabase) -> None:
        """WAL mode, then create or upgrade the schema in one write transaction."""
        new = db.connection.execute("PRAGMA page_count").fetchone()[0] == 0
        enable_wal(db.connection, self.path, new)
        try:
            db.connection.execute("BEGIN IMMEDIATE")
            outcome = migrations.upgrade(db, time.time_ns(), self.path)
            db.connection.execute("COMMIT")
        except BaseException as error:
            if db.connection.in_transaction:
                db.connection.execute("ROLLBACK")
            raise db.translate(error, f"opening {self.path}") from None
        self.schema_found = outcome.found

    async def open(self) -> None:
        """Open the file (creating or upgrading it), start the writer and reader threads."""
        if self._pool is not None:
            return
        if self.path == ":memory:" or self.path.startswith("file:"):
            raise StorageError(f"sqlite storage needs a file path, got {self.path!r}; use backend 'memory' instead")
        directory = Path(self.path).parent
        if not directory.is_dir():
            raise StorageError(f"cannot open {self.path}: directory {directory} does not exist")
        pool = Pool(self._connect, self.config.readers, self._checkpointer)
        await asyncio.to_thread(pool.start)
        changes = ChangeWatch(self.path, float(self.config.busy_timeout))
        try:
            await asyncio.to_thread(changes.open)
        except BaseException:
            await asyncio.to_thread(pool.stop)
            raise
        self._pool, self._changes = pool, changes

    async def close(self) -> None:
        """Finish queued work and close every connection. Safe to call twice."""
        pool, self._pool = self._pool, None
        changes, self._changes = self._changes, None
        if changes is not None:
            changes.close()
        if pool is not None:
            await asyncio.to_thread(pool.stop)

    def _running(self) -> Pool:
        if self._pool is None:
            raise StorageError(f"the SQLite storage at {self.path} is not open")
        return self._pool

    async def _write(self, job: Any, doing: str) -> Any:
        return await self._running().write(job, doing)

    async def _read(self, job: Any, doing: str) -> Any:
        return await self._running().read(job, doing)

    # -- writes -------------------------------------------------------------------------------------------
    async def write_metrics(self, rollups: Sequence[MetricRollup]) -> None:
        """Store rollups; a rollup for an existing (series, start_ns) is merged into it."""
        if rollups:
            prepared = metrics.prepare(rollups)
            await self._write(lambda db: metrics.write(db, prepared), f"write {len(rollups)} metric rollups")

    async def write_logs(self, records: Sequence[LogRecord]) -> None:
        """Append log records; ids are time keys, so they grow with time (see tocsin_sql.logkeys)."""
        if records:
            rows = [logs.encode(record) for record in records]
            await self._write(lambda db: logs.insert(db, rows, self._log_keys), f"write {len(rows)} log records")

    # -- logs -------------------------------------------------------------------------------------------------
    async def search_logs(self, query: LogQuery) -> Page[LogHit]:
        """Logs matching the query, newest first, with a total (None past search.TOTAL_LIMIT matches)."""
        planned = search.plan(query)
        return await self._read(lambda db: search.run(db, planned), "search logs")

    # -- housekeeping -------------------------------------------------------------------------------------
    async def sweep(self, retention: Retention, now_ns: int) -> dict[str, int]:
        """Delete what is older than each signal's retention, a chunk per write transaction; rows per signal.

        Then the log index is compacted (`compact`). Freed pages are reused by later writes; when they pass a
        quarter of the file they are given back to the file system, in short steps, until a tenth is left free.
        """
        deleted = dict.fromkeys(RETENTION_SIGNALS, 0)
        for signal in RETENTION_SIGNALS:
            seconds = getattr(retention, signal)
            if seconds is None:
                continue
            sweep = Sweep(signal, now_ns - round(seconds * 1e9))
            while not await self._write(sweep.step, f"sweep old {signal}"):
                pass
            deleted[signal] = sweep.deleted
        await self.compact()  # before the release: merging the index frees pages too
        if any(deleted.values()):
            release = FreePageRelease()
            while await self._write(release.step, "release free pages"):
                pass
        return deleted

    async def compact(self) -> None:
        """Merge the log index into one segment, a short write transaction at a time (runs after each sweep)."""
        while await self._write(merge_index_step, "merge the log index"):
            pass

    async def stats(self) -> StorageStats:
        """Rows per table, and the bytes of the database file and its WAL."""

        def count(db: SQLiteDatabase) -> StorageStats:
            rows = {table.name: db.fetch(f"SELECT count(*) FROM {table.name}")[0][0] for table in ROW_COUNTED}
            files = (self.path, self.path + "-wal")
            return StorageStats(rows=rows, bytes=sum(os.path.getsize(f) for f in files if os.path.exists(f)))

        return await self._read(count, "count rows")

    # -- change feed ------------------------------------------------------------------------------------------
    async def change_marker(self) -> int:
        """A counter that moves whenever a commit reached the file since the last call, from this process's
        writer or any other process (`PRAGMA data_version` on a connection of its own, tocsin_sqlite.changes)."""
        changes = self._changes
        if changes is None:
            raise StorageError(f"the SQLite storage at {self.path} is not open")
        return await asyncio.to_thread(changes.marker)
