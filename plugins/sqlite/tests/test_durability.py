"""Crashes, other processes and long readers: what the SQLite backend promises (RELIABILITY.md section 1)."""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from sqlite_test_helpers import config, log
from tocsin_sqlite import SQLiteStorage

from tocsin.errors import StorageError
from tocsin.storage.protocol import LogQuery

BATCH = 200

# A process that ingests numbered batches through the backend and prints each batch id once its write returned.
INGEST = textwrap.dedent(
    """
    import asyncio, sys
    from tocsin.models import LogRecord
    from tocsin_sqlite import SQLiteStorage

    T0 = 1_700_000_000_000_000_000

    async def main(path, durability, first, batches):
        storage = SQLiteStorage(SQLiteStorage.Config(path=path, durability=durability))
        await storage.open()
        for number in range(first, first + batches):
            records = [
                LogRecord(time_ns=T0 + (number * {batch} + n) * 1_000_000, level="info", service="ingest",
                          message=f"batch{{number}}x line {{n}} worker {{first}} connection refused")
                for n in range({batch})
            ]
            await storage.write_logs(records)
            print("acked", number, flush=True)
        await storage.close()

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    """
).format(batch=BATCH)


def _ingest(path, durability: str = "normal", first: int = 0, batches: int = 10_000) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", INGEST, str(path), durability, str(first), str(batches)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _acked(output: str) -> list[int]:
    return [int(line.split()[1]) for line in output.splitlines() if line.startswith("acked ")]


def _check_file(path) -> int:
    """integrity_check and the FTS index against its table; returns the number of log rows."""
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        connection.execute("INSERT INTO logs_fts (logs_fts, rank) VALUES ('integrity-check', 1)")
        rows = connection.execute("SELECT count(*) FROM logs").fetchone()[0]
        indexed = connection.execute("SELECT count(*) FROM logs_fts WHERE logs_fts MATCH 'refused'").fetchone()[0]
    connection.close()
    assert indexed == rows
    return rows


@pytest.mark.parametrize("durability", ["normal", "strict"])
async def test_kill_9_loses_no_acknowledged_batch(tmp_path, durability):
    path = tmp_path / "t.db"
    process = _ingest(path, durability)
    acked = []
    for line in process.stdout:
        acked += _acked(line)
        if len(acked) >= 25:
            break
    process.send_signal(signal.SIGKILL)
    rest, _ = process.communicate(timeout=30)
    acked += _acked(rest)
    assert process.returncode == -signal.SIGKILL
    rows = _check_file(path)
    storage = SQLiteStorage(config(path))
    await storage.open()
    try:
        for number in acked:
            page = await storage.search_logs(LogQuery(text=f"batch{number}x", limit=1))
            assert page.total == BATCH, f"acknowledged batch {number} is incomplete"
        assert rows in (len(acked) * BATCH, (len(acked) + 1) * BATCH)  # at most the one in flight on top
    finally:
        await storage.close()


def _hold_write_lock(path, seconds: float) -> subprocess.Popen:
    script = (
        "import sqlite3, sys, time\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE')\n"
        "c.execute(\"INSERT OR REPLACE INTO tocsin_meta VALUES ('held', 1)\")\n"
        "print('locked', flush=True)\n"
        "time.sleep(float(sys.argv[2]))\n"
        "c.execute('COMMIT')\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "locked"
    return process


async def test_a_second_writer_waits_for_a_short_lock_and_fails_clearly_on_a_long_one(tmp_path):
    path = tmp_path / "t.db"
    storage = SQLiteStorage(config(path, busy_timeout=1.0))
    await storage.open()
    try:
        holder = _hold_write_lock(path, 0.3)
        await storage.write_logs([log("refused, then written after a short wait", 1)])  # it waited, then wrote
        holder.wait(timeout=30)
        holder = _hold_write_lock(path, 2.5)
        with pytest.raises(StorageError, match=r"locked by another writer.*busy_timeout"):
            await storage.write_logs([log("refused and never written", 2)])
        page = await storage.search_logs(LogQuery())  # readers are not blocked by the writer
        assert [hit.record.message for hit in page.items] == ["refused, then written after a short wait"]
        holder.wait(timeout=30)
        await storage.write_logs([log("refused, written once the lock is free", 3)])
        assert (await storage.search_logs(LogQuery())).total == 2
    finally:
        await storage.close()
    assert _check_file(path) == 2


async def test_two_processes_ingesting_into_one_file_interleave_cleanly(tmp_path):
    path = tmp_path / "t.db"
    storage = SQLiteStorage(config(path))
    await storage.open()
    await storage.close()  # create the file first, so the two writers only ever append
    first, second = _ingest(path, first=0, batches=15), _ingest(path, first=1000, batches=15)
    outputs = [process.communicate(timeout=120) for process in (first, second)]
    assert all(process.returncode == 0 for process in (first, second)), outputs
    assert _check_file(path) == 30 * BATCH
    storage = SQLiteStorage(config(path))
    await storage.open()
    try:
        page = await storage.search_logs(LogQuery(text="line", limit=1000, start_ns=0))
        assert len({hit.record.id for hit in page.items}) == 1000
    finally:
        await storage.close()


def _wal_size(path) -> int:
    return os.path.getsize(f"{path}-wal")


def _readers(path, stop: threading.Event) -> list[threading.Thread]:
    """Two readers whose short read transactions overlap, so there is never a moment without one."""

    def read(offset: float) -> None:
        connection = sqlite3.connect(path, isolation_level=None)
        time.sleep(offset)
        while not stop.is_set():
            connection.execute("BEGIN")
            connection.execute("SELECT count(*) FROM logs").fetchone()
            time.sleep(0.01)
            connection.execute("COMMIT")
        connection.close()

    threads = [threading.Thread(target=read, args=(offset,)) for offset in (0, 0.005)]
    for thread in threads:
        thread.start()
    return threads


async def test_overlapping_readers_do_not_let_the_wal_grow_without_bound(tmp_path):
    path = tmp_path / "t.db"
    storage = SQLiteStorage(config(path, wal_limit_mb=1))
    await storage.open()
    stop = threading.Event()
    threads = _readers(path, stop)
    try:
        largest = 0
        for batch in range(80):  # about 16 MB of log text and index in all
            await storage.write_logs([log(f"{'payload ' * 20} {batch} {n}", batch * 1000 + n) for n in range(500)])
            largest = max(largest, _wal_size(path))
        assert largest < 6 * 2**20  # without truncating checkpoints it reaches the whole 16 MB
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        await storage.close()


async def test_past_a_pinned_reader_truncation_is_tried_again_each_time_the_wal_grows_by_half(tmp_path):
    """During the back-off after a failed truncation, the WAL's growth (by half again, at least one limit)
    brings the next try, not only the clock: here the clock never would (a back-off of an hour)."""
    path = tmp_path / "t.db"
    storage = SQLiteStorage(config(path, wal_limit_mb=1))
    await storage.open()
    checkpointer = storage._checkpointer
    tried: list[int] = []
    truncate = checkpointer._truncate

    def counted(connection):
        tried.append(_wal_size(path))
        return truncate(connection)

    checkpointer._truncate = counted
    try:
        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM logs").fetchone()  # pins the WAL: every truncation fails
        checkpointer.retry = 3600.0
        for batch in range(40):
            await storage.write_logs([log(f"{'payload ' * 20} {batch} {n}", batch * 1000 + n) for n in range(500)])
        final = _wal_size(path)
        reader.execute("COMMIT")
        reader.close()
        assert final > 8 * 2**20 and len(tried) >= 4
        assert all(later >= max(1.5 * earlier, earlier + 2**20) for earlier, later in itertools.pairwise(tried))
        assert tried[-1] * 1.5 > final - 2**20  # none skipped: the last try was within one step of the end
    finally:
        await storage.close()


async def test_a_long_reader_only_holds_the_wal_until_it_ends(tmp_path):
    path = tmp_path / "t.db"
    storage = SQLiteStorage(config(path, wal_limit_mb=1))
    await storage.open()
    try:
        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM logs").fetchone()
        for batch in range(10):
            await storage.write_logs([log(f"{'payload ' * 20} {batch} {n}", batch * 1000 + n) for n in range(500)])
        pinned = _wal_size(path)
        assert pinned > 2**20  # the reader's snapshot keeps every frame
        reader.execute("COMMIT")
        reader.close()
        await storage.write_logs([log("one more", 99_000)])  # the checkpoint runs right after this commit...
        await storage.write_logs([log("and another", 99_001)])  # ... and before this write starts
        assert _wal_size(path) < 2**20
    finally:
        await storage.close()
