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

from tocsin_sql import alerts, groups, health, leases, logs, metrics, migrations, outbox, traces, workflows
from tocsin_sql.database import StatementCache
from tocsin_sql.logkeys import LogKeys
from tocsin_sql.retention import Sweep
from tocsin_sql.schema import ROW_COUNTED
from tocsin_sql.transfer import SqlTransfer

from tocsin.ext import (
    RETENTION_SIGNALS,
    Alert,
    AlertQuery,
    AlertTransition,
    Delivery,
    DeliveryAttempt,
    DeliveryQuery,
    DeliveryState,
    ExecutionQuery,
    GroupState,
    HealthResult,
    HealthStatus,
    LogHit,
    LogQuery,
    LogRecord,
    MetricInfo,
    MetricQuery,
    MetricRollup,
    Page,
    Retention,
    SeriesPoints,
    Silence,
    Span,
    SpanQuery,
    StorageError,
    StorageStats,
    WorkflowExecution,
    WorkflowStep,
    check_lease,
    check_query,
    check_query_values,
    compile_matchers,
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


class SQLiteBackend(SQLiteStorage, SqlTransfer):
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

    async def write_spans(self, spans: Sequence[Span]) -> None:
        """Store spans; a later write of the same span replaces it, a colliding span_id never does."""
        if spans:
            rows = [traces.encode(span) for span in spans]
            await self._write(lambda db: traces.write(db, rows), f"write {len(rows)} spans")

    async def write_logs(self, records: Sequence[LogRecord]) -> None:
        """Append log records; ids are time keys, so they grow with time (see tocsin_sql.logkeys)."""
        if records:
            rows = [logs.encode(record) for record in records]

            def job(db: SQLiteDatabase) -> None:
                db.dialect.index_logs(db, logs.insert(db, rows, self._log_keys))

            await self._write(job, f"write {len(rows)} log records")

    async def write_health(self, results: Sequence[HealthResult]) -> None:
        """Append health check results."""
        if results:
            rows = [health.encode(result) for result in results]
            await self._write(lambda db: health.write(db, rows), f"write {len(rows)} health results")

    # -- metrics --------------------------------------------------------------------------------------------
    async def list_metrics(self) -> list[MetricInfo]:
        """Every metric name with its kind, series count and label names, sorted by name."""
        return await self._read(metrics.list_metrics, "list metrics")

    async def query_metrics(self, query: MetricQuery) -> list[SeriesPoints]:
        """Aggregate rollups as the query says (tiers for long ranges, tocsin.storage.rollups.evaluate for the math)."""
        check_query_values(query)
        check_query(query)
        matches = compile_matchers(query.matchers)
        return await self._read(lambda db: metrics.query(db, query, matches), f"query metric {query.name!r}")

    # -- traces -----------------------------------------------------------------------------------------------
    async def get_trace(self, trace_id: str) -> list[Span]:
        """Every span of one trace ordered by start time; empty when unknown."""
        return await self._read(lambda db: traces.get_trace(db, trace_id), f"read trace {trace_id[:40]!r}")

    async def search_spans(self, query: SpanQuery) -> Page[Span]:
        """Spans matching the query, newest first, with cursor pagination."""
        check_query_values(query)
        return await self._read(lambda db: traces.search(db, query), "search spans")

    # -- logs -------------------------------------------------------------------------------------------------
    async def search_logs(self, query: LogQuery) -> Page[LogHit]:
        """Logs matching the query, newest first, with a total (None past search.TOTAL_LIMIT matches)."""
        planned = search.plan(query)
        return await self._read(lambda db: search.run(db, planned), "search logs")

    # -- alerts and silences ----------------------------------------------------------------------------------
    async def save_alert(
        self,
        alert: Alert,
        transitions: Sequence[AlertTransition] = (),
        deliveries: Sequence[Delivery] = (),
    ) -> None:
        """Upsert an alert with its new transitions and outbox deliveries in one transaction."""
        row = alerts.encode_alert(alert)
        changes = [alerts.encode_transition(transition) for transition in transitions]
        queued = [outbox.encode_delivery(delivery) for delivery in deliveries]

        def job(db: SQLiteDatabase) -> None:
            alerts.save_alert(db, row, changes)
            outbox.enqueue(db, queued)

        await self._write(job, f"save alert {alert.fingerprint!r}")

    async def get_alert(self, fingerprint: str) -> Alert | None:
        """One alert by fingerprint."""
        return await self._read(lambda db: alerts.get_alert(db, fingerprint), "read an alert")

    async def list_alerts(self, query: AlertQuery) -> Page[Alert]:
        """Alerts matching the query, most recently updated first."""
        check_query_values(query)
        matches = compile_matchers(query.matchers)
        return await self._read(lambda db: alerts.list_alerts(db, query, matches), "list alerts")

    async def alert_history(self, fingerprint: str, limit: int = 100) -> list[AlertTransition]:
        """An alert's transitions, oldest first (the last `limit`)."""
        return await self._read(lambda db: alerts.alert_history(db, fingerprint, limit), "read alert history")

    async def transitions_between(self, start_ns: int, end_ns: int) -> list[AlertTransition]:
        """Every transition of every alert in [start_ns, end_ns), oldest first."""
        return await self._read(lambda db: alerts.transitions_between(db, start_ns, end_ns), "read transitions")

    async def save_silence(self, silence: Silence) -> None:
        """Create or replace a silence by id."""
        row = alerts.encode_silence(silence)
        await self._write(lambda db: alerts.save_silence(db, row), f"save silence {silence.id!r}")

    async def list_silences(self, active_at_ns: int | None = None) -> list[Silence]:
        """Every silence (expired ones too), or only those active at a time; by start."""
        return await self._read(lambda db: alerts.list_silences(db, active_at_ns), "list silences")

    async def delete_silence(self, silence_id: str) -> bool:
        """Remove a silence; False when there was none."""
        return await self._write(lambda db: alerts.delete_silence(db, silence_id), f"delete silence {silence_id!r}")

    # -- notification outbox -------------------------------------------------------------------------------
    async def enqueue_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        """Add deliveries to the outbox; an id already there is kept as it is."""
        rows = [outbox.encode_delivery(delivery) for delivery in deliveries]
        if rows:
            await self._write(lambda db: outbox.enqueue(db, rows), f"enqueue {len(rows)} deliveries")

    async def claim_deliveries(self, now_ns: int, limit: int, lease_s: float) -> list[Delivery]:
        """Take up to `limit` due deliveries, oldest first, and lease them (one write transaction)."""
        return await self._write(lambda db: outbox.claim(db, now_ns, limit, lease_s), "claim deliveries")

    async def record_attempt(
        self, attempt: DeliveryAttempt, state: DeliveryState, next_attempt_ns: int | None = None
    ) -> None:
        """Log an attempt and move its delivery to `state`."""
        await self._write(
            lambda db: outbox.record_attempt(db, attempt, state, next_attempt_ns),
            f"record an attempt of delivery {attempt.delivery_id!r}",
        )

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        """One delivery by id."""
        return await self._read(lambda db: outbox.get_delivery(db, delivery_id), "read a delivery")

    async def list_deliveries(self, query: DeliveryQuery) -> Page[Delivery]:
        """Outbox entries, newest first."""
        check_query_values(query)
        return await self._read(lambda db: outbox.list_deliveries(db, query), "list deliveries")

    async def list_attempts(self, delivery_id: str) -> list[DeliveryAttempt]:
        """Every attempt of one delivery, oldest first."""
        return await self._read(lambda db: outbox.list_attempts(db, delivery_id), "list delivery attempts")

    # -- health -----------------------------------------------------------------------------------------------
    async def health_history(
        self,
        component: str,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = 100,
        status: HealthStatus | None = None,
    ) -> list[HealthResult]:
        """A component's results, newest first."""
        return await self._read(
            lambda db: health.history(db, component, start_ns, end_ns, limit, status), "read health history"
        )

    # -- workflows --------------------------------------------------------------------------------------------
    async def save_execution(self, execution: WorkflowExecution) -> None:
        """Create or replace an execution by id."""
        row = workflows.encode_execution(execution)
        await self._write(lambda db: workflows.save_execution(db, row), f"save execution {execution.id!r}")

    async def save_step(self, step: WorkflowStep) -> None:
        """Create or replace a step by (execution_id, name, started_ns)."""
        row = workflows.encode_step(step)
        await self._write(lambda db: workflows.save_step(db, row), f"save step {step.name!r}")

    async def write_workflows(self, executions: Sequence[WorkflowExecution], steps: Sequence[WorkflowStep]) -> None:
        """Create or replace a batch of executions and steps in one transaction; later ones win."""
        if executions or steps:
            encoded = [workflows.encode_execution(e) for e in executions], [workflows.encode_step(s) for s in steps]
            await self._write(lambda db: workflows.write(db, *encoded),
                              f"write {len(executions)} executions and {len(steps)} steps")

    async def get_execution(self, execution_id: str) -> tuple[WorkflowExecution, list[WorkflowStep]] | None:
        """An execution with its steps ordered by start."""
        return await self._read(lambda db: workflows.get_execution(db, execution_id), "read an execution")

    async def list_executions(self, query: ExecutionQuery) -> Page[WorkflowExecution]:
        """Executions matching the query, newest first."""
        check_query_values(query)
        return await self._read(lambda db: workflows.list_executions(db, query), "list executions")

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

    # -- notification grouping state --------------------------------------------------------------------------
    async def save_group_state(self, state: GroupState) -> None:
        """Upsert timers and marks, add firing members and remove the others, in one write transaction."""
        if state.groups or state.members or state.marks:
            await self._write(lambda db: groups.save(db, state), "save notification group state")

    async def load_group_state(self) -> GroupState:
        """Every stored timer, firing member and repeat mark."""
        return await self._read(groups.load, "read notification group state")

    # -- leases -----------------------------------------------------------------------------------------------
    async def acquire_lease(self, name: str, holder: str, ttl_s: float, now_ns: int) -> bool:
        """Take or renew the lease until now + ttl when it is free, expired or `holder`'s (one upsert under the
        write lock, so processes sharing the file cannot both win); True when `holder` holds it."""
        check_lease(name, holder, ttl_s, now_ns)
        return await self._write(lambda db: leases.acquire(db, name, holder, ttl_s, now_ns), f"take lease {name!r}")

    async def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up if `holder` holds it."""
        check_lease(name, holder)
        await self._write(lambda db: leases.release(db, name, holder), f"release lease {name!r}")

    async def lease_holder(self, name: str, now_ns: int) -> str | None:
        """Who holds the lease at `now_ns`, or None."""
        check_lease(name, now_ns=now_ns)
        return await self._read(lambda db: leases.holder(db, name, now_ns), f"read lease {name!r}")

    # -- change feed ------------------------------------------------------------------------------------------
    async def change_marker(self) -> int:
        """A counter that moves whenever a commit reached the file since the last call, from this process's
        writer or any other process (`PRAGMA data_version` on a connection of its own, tocsin_sqlite.changes)."""
        changes = self._changes
        if changes is None:
            raise StorageError(f"the SQLite storage at {self.path} is not open")
        return await asyncio.to_thread(changes.marker)
