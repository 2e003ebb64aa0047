"""Threads that own the SQLite connections: one writer with group commit, and a pool of readers.

An awaited database call costs one hop to a thread and back (about 0.1-0.2 ms here), whatever it does, so
every storage method is one job that does all its statements in the thread (PERFORMANCE.md section 4
measured aiosqlite's per-statement awaits at 0.24 ms each). sqlite3 releases the GIL while SQLite works,
so the writer and the readers run in parallel on separate connections (WAL: readers never block the
writer, nor the writer them).

The writer takes every job queued while it was busy and runs them in one `BEGIN IMMEDIATE` transaction,
each inside its own savepoint (group commit): concurrent writers share one commit, and a job that fails
rolls back only itself. A caller's await returns only after the commit, so an acknowledged write is on disk
as far as the durability mode promises. Readers run each job in one read transaction (one snapshot), under
the query deadline.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from tocsin.ext import StorageError
from tocsin_sqlite.connection import SQLiteDatabase

R = TypeVar("R")
Job = Callable[[SQLiteDatabase], Any]

log = logging.getLogger("tocsin.sqlite")

MAX_GROUP = 128
"""Most jobs one write transaction takes from the queue."""


class _Task(Generic[R]):
    """A job, what it is for (for messages), and the future of the coroutine awaiting it."""

    __slots__ = ("doing", "future", "job", "loop")

    def __init__(self, job: Job, doing: str) -> None:
        self.job = job
        self.doing = doing
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future[R] = self.loop.create_future()

    def settle(self, result: Any, error: BaseException | None) -> None:
        """Hand the outcome to the awaiting coroutine's loop (from the database thread)."""
        try:
            self.loop.call_soon_threadsafe(_settle, self.future, result, error)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


_STOP = object()


class Worker:
    """One thread, one connection; runs jobs from a queue (shared by the readers, private to the writer)."""

    def __init__(self, name: str, open_db: Callable[[], SQLiteDatabase], jobs: queue.SimpleQueue[Any],
                 writer: bool, after_commit: Callable[[SQLiteDatabase], None] | None = None) -> None:
        self.name = name
        self._open = open_db
        self._jobs = jobs
        self._writer = writer
        self._after_commit = after_commit
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self) -> None:
        """Start the thread and wait until its connection is open (raising what opening raised)."""
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            self._thread.join()
            raise self._failure

    def join(self) -> None:
        """Wait for the thread to finish (after a stop marker was queued)."""
        self._thread.join()

    def _main(self) -> None:
        try:
            db = self._open()
        except BaseException as error:
            self._failure = error
            self._ready.set()
            return
        self._ready.set()
        try:
            if self._writer:
                self._write_loop(db)
            else:
                self._read_loop(db)
        finally:
            db.close()

    # -- readers ------------------------------------------------------------------------------------------
    def _read_loop(self, db: SQLiteDatabase) -> None:
        while (task := self._jobs.get()) is not _STOP:
            result, error = None, None
            try:
                with db.guard.deadline_for():
                    db.connection.execute("BEGIN")
                    try:
                        result = task.job(db)
                    finally:
                        db.connection.execute("COMMIT")
            except BaseException as failure:
                error = db.translate(failure, task.doing)
            task.settle(result, error)
        self._jobs.put(_STOP)  # let the next reader see it too

    # -- the writer ---------------------------------------------------------------------------------------
    def _write_loop(self, db: SQLiteDatabase) -> None:
        stopping = False
        while not stopping:
            batch = [self._jobs.get()]
            while len(batch) < MAX_GROUP:
                try:
                    batch.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            if _STOP in batch:
                stopping = True
                batch = [task for task in batch if task is not _STOP]
            self._commit(db, batch)

    def _commit(self, db: SQLiteDatabase, group: list[_Task[Any]]) -> None:
        """Run a group of jobs in one transaction, each in a savepoint; settle them after COMMIT."""
        if not group:
            return
        connection = db.connection
        try:
            connection.execute("BEGIN IMMEDIATE")
        except BaseException as failure:
            doing = group[0].doing if len(group) == 1 else f"{len(group)} writes"
            error = db.translate(failure, doing)
            for task in group:
                task.settle(None, error)
            return
        outcomes: list[tuple[_Task[Any], Any, BaseException | None]] = []
        try:
            for task in group:
                connection.execute("SAVEPOINT job")
                try:
                    outcomes.append((task, task.job(db), None))
                    connection.execute("RELEASE job")
                except BaseException as failure:
                    if not connection.in_transaction:  # SQLite rolled the whole transaction back
                        raise
                    connection.execute("ROLLBACK TO job")
                    connection.execute("RELEASE job")
                    outcomes.append((task, None, db.translate(failure, task.doing)))
            connection.execute("COMMIT")
        except BaseException as failure:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            error = db.translate(failure, "a group of writes")
            if not isinstance(error, StorageError):
                error = StorageError(f"writing to {db.path} failed: {error!r}")
            for task in group:
                task.settle(None, error)
            return
        for task, result, error in outcomes:
            task.settle(result, error)
        if self._after_commit is not None:
            try:
                self._after_commit(db)
            except Exception:  # housekeeping must never fail a write that committed
                log.exception("tocsin: SQLite housekeeping after a commit failed")


class Pool:
    """The writer and the readers of one database file, and the async calls that reach them."""

    def __init__(self, open_db: Callable[[bool], SQLiteDatabase], readers: int,
                 after_commit: Callable[[SQLiteDatabase], None]) -> None:
        self._write_jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._read_jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer = Worker("tocsin-sqlite-writer", lambda: open_db(False), self._write_jobs, True, after_commit)
        self._readers = [
            Worker(f"tocsin-sqlite-reader-{i}", lambda: open_db(True), self._read_jobs, False) for i in range(readers)
        ]
        self.running = False

    def start(self) -> None:
        """Open the writer first (it creates or upgrades the schema), then the readers."""
        self._writer.start()
        started: list[Worker] = [self._writer]
        try:
            for reader in self._readers:
                reader.start()
                started.append(reader)
        except BaseException:
            self._stop(started)
            raise
        self.running = True

    def stop(self) -> None:
        """Finish queued jobs, close every connection, join the threads."""
        if self.running:
            self.running = False
            self._stop([self._writer, *self._readers])

    def _stop(self, workers: list[Worker]) -> None:
        """Close the readers, then the writer: the last connection to close checkpoints and removes the WAL,
        and two closing at once each see the other and leave the WAL behind."""
        self._read_jobs.put(_STOP)
        for worker in workers:
            if worker is not self._writer:
                worker.join()
        self._write_jobs.put(_STOP)
        if self._writer in workers:
            self._writer.join()

    async def write(self, job: Job, doing: str) -> Any:
        """Run a job in the writer, inside a group transaction (in its own savepoint)."""
        return await self._submit(self._write_jobs, job, doing)

    async def read(self, job: Job, doing: str) -> Any:
        """Run a job in a reader, in one read transaction, under the query deadline."""
        return await self._submit(self._read_jobs, job, doing)

    async def _submit(self, jobs: queue.SimpleQueue[Any], job: Job, doing: str) -> Any:
        if not self.running:
            raise StorageError(f"cannot {doing}: the SQLite storage is not open")
        task: _Task[Any] = _Task(job, doing)
        jobs.put(task)
        return await task.future
