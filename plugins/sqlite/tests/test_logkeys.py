"""Log ids under bursts: unique, in time order, late records still placed, several writers on one file.

`tocsin_sql.logkeys.LogKeys` remembers the newest ids between writes so that a burst (more than 256 records
in one ~1 ms bucket) costs no lookups. These tests check that what it hands out is exactly what walking the
stored buckets one by one gives (the rule of docs/storage.md), whatever else wrote the store meanwhile, and
that the backend keeps every record when bursts, late batches and other writers meet.
"""

from __future__ import annotations

import asyncio
import bisect
import sqlite3
import sys
import textwrap

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlite_test_helpers import config
from tocsin_sql import logkeys
from tocsin_sql.logkeys import BUCKET_SHIFT, SLOT_BITS, SLOTS, LogKeys
from tocsin_sqlite import SQLiteStorage

from tocsin.models import LogRecord
from tocsin.storage.protocol import LogQuery

BUCKET0 = 1_700_000_000_000_000_000 >> BUCKET_SHIFT
T0 = BUCKET0 << BUCKET_SHIFT
"""A time at the very start of a bucket, so that 1 ms from it is one bucket."""
MS = 1_000_000


# -- the allocator against the rule, walked the slow way ------------------------------------------------


def _walk(times: list[int], stored: list[int]) -> list[int]:
    """The ids the rule gives: in time order, each record takes its bucket's first id past everything, else
    the id after the largest anywhere when its bucket is the largest's, else the id after its bucket's
    largest (stored or just given), moving on to the next bucket while the bucket is full."""
    taken = sorted(stored)
    ids = [0] * len(times)
    for i in sorted(range(len(times)), key=times.__getitem__):
        bucket = times[i] >> BUCKET_SHIFT
        while True:
            lo = bucket << SLOT_BITS
            top = taken[-1] if taken else None
            if top is None or lo > top:
                new = lo
                break
            if bucket == top >> SLOT_BITS:
                new = top + 1
                break
            at = bisect.bisect_left(taken, lo + SLOTS)
            highest = taken[at - 1] if at and taken[at - 1] >= lo else lo - 1
            if highest + 1 < lo + SLOTS:
                new = highest + 1
                break
            bucket += 1
        ids[i] = new
        bisect.insort(taken, new)
    return ids


def _highest_in(stored: list[int]):
    def highest_in(lo: int, hi: int) -> int | None:
        at = bisect.bisect_left(stored, hi)
        return stored[at - 1] if at and stored[at - 1] >= lo else None

    return highest_in


_BATCH = st.tuples(
    st.integers(-4, 40),  # where the batch starts, in ms from the newest time written so far
    st.sampled_from([1, 3, 40, 300, 1000]),  # how many records
    st.sampled_from([0, 1, 50_000, 1_000_000, 4_000_000]),  # spread in ns
    st.booleans(),  # sorted or shuffled
    st.integers(0, 2),  # which writer writes it
    st.booleans(),  # the write rolls back
)


@settings(max_examples=60, deadline=None)
@given(batches=st.lists(_BATCH, min_size=1, max_size=14), seed=st.randoms(use_true_random=False))
def test_writers_that_remember_hand_out_what_walking_the_buckets_gives(batches, seed):
    """Three writers with their own memory, rolled-back writes, bursts, late batches: every batch gets the
    ids of the slow walk over the store as it is, so no id is ever given twice."""
    writers = [LogKeys(), LogKeys(), LogKeys()]
    stored: list[int] = []
    newest = T0
    for start_ms, count, spread, ordered, writer, rolled_back in batches:
        first = newest + start_ms * MS
        times = [first + (seed.randrange(spread) if spread else 0) for _ in range(count)]
        if ordered:
            times.sort()
        newest = max(newest, *times)
        assignment = writers[writer].assign(times, stored[-1] if stored else None, _highest_in(stored))
        assert assignment.ids == _walk(times, stored)
        assert not set(assignment.ids) & set(stored) and len(set(assignment.ids)) == count
        if not rolled_back:
            stored = sorted(stored + assignment.ids)


def test_a_burst_costs_no_lookups_however_long_it_runs_ahead():
    def never(lo: int, hi: int) -> int | None:
        raise AssertionError(f"looked up ids {lo}..{hi} for a record inside the run")

    keys = LogKeys()
    stored: list[int] = []
    for batch in range(20):  # 20,000 records at 5 per us: ids run 74 buckets ahead of time
        times = [T0 + (batch * 1000 + i) * 200 for i in range(1000)]
        assignment = keys.assign(times, stored[-1] if stored else None, never)
        assert assignment.ids == _walk(times, stored)
        stored.extend(assignment.ids)
    assert (stored[-1] >> SLOT_BITS) - BUCKET0 > 70


def test_a_late_batch_looks_up_each_bucket_once():
    keys = LogKeys()
    burst = [T0] * 3000  # buckets BUCKET0..BUCKET0+11 full
    stored = keys.assign(burst, None, _highest_in([])).ids
    later = keys.assign([T0 + 100 * MS], stored[-1], _highest_in(stored)).ids  # a new run, far ahead
    stored = sorted(stored + later)
    asked: list[int] = []

    def highest_in(lo: int, hi: int) -> int | None:
        asked.append(lo >> SLOT_BITS)
        return _highest_in(stored)(lo, hi)

    times = [T0 + (i % 5) * 1000 for i in range(500)]  # late, into the full buckets of the burst
    assignment = keys.assign(times, stored[-1], highest_in)
    assert assignment.ids == _walk(times, stored)
    assert len(asked) == len(set(asked)) <= 14


# -- the backend -----------------------------------------------------------------------------------------


def _record(at_ns: int, label: str) -> LogRecord:
    return LogRecord(time_ns=at_ns, level="info", service="burst", message=f"burst record {label}")


def _stored(path) -> list[tuple[int, int, str]]:
    """(id, time_ns, message) of every stored log, by id."""
    connection = sqlite3.connect(path)
    try:
        return connection.execute("SELECT id, time_ns, message FROM logs ORDER BY id").fetchall()
    finally:
        connection.close()


def _spill(path) -> int:
    connection = sqlite3.connect(path)
    try:
        row = connection.execute("SELECT value FROM tocsin_meta WHERE key = 'log_id_spill'").fetchone()
    finally:
        connection.close()
    return 0 if row is None else row[0]


def _check_layout(path, arrival: dict[str, int]) -> list[tuple[int, int, str]]:
    """Every record stored once, inside its time's id range; within a bucket, ids follow arrival order."""
    rows = _stored(path)
    assert sorted(message for _, _, message in rows) == sorted(arrival)
    spill = _spill(path)
    by_bucket: dict[int, list[tuple[int, int]]] = {}
    for log_id, time_ns, message in rows:
        bucket = logkeys.bucket_of(time_ns)
        assert logkeys.first_id(bucket) <= log_id < logkeys.first_id(bucket + spill + 1)
        by_bucket.setdefault(bucket, []).append((arrival[message], log_id))
    for pairs in by_bucket.values():
        assert [log_id for _, log_id in sorted(pairs)] == sorted(log_id for _, log_id in pairs)
    return rows


async def test_a_burst_in_one_millisecond_gets_unique_ids_in_arrival_order(tmp_path):
    path = tmp_path / "t.db"
    storage = SQLiteStorage(config(path))
    await storage.open()
    try:
        records = [_record(T0 + i * 200, str(i)) for i in range(5000)]  # 5000 records in one ms, one bucket
        for first in range(0, 5000, 1000):
            await storage.write_logs(records[first : first + 1000])
        page = await storage.search_logs(LogQuery(start_ns=T0, end_ns=T0 + MS, limit=10_000))
        outside = await storage.search_logs(LogQuery(start_ns=T0 + MS, end_ns=T0 + 100 * MS, limit=10))
    finally:
        await storage.close()
    rows = _check_layout(path, {record.message: i for i, record in enumerate(records)})
    assert [message for _, _, message in rows] == [record.message for record in records]  # id order = arrival
    assert len({log_id for log_id, _, _ in rows}) == 5000
    assert _spill(path) >= 5000 // SLOTS
    assert [hit.record.message for hit in page.items] == [record.message for record in reversed(records)]
    assert outside.items == []  # the ids lent from later buckets do not make records show up there


async def test_late_batches_still_get_ids(tmp_path):
    path = tmp_path / "t.db"
    storage = SQLiteStorage(config(path))
    await storage.open()
    arrival: dict[str, int] = {}

    async def write(times: list[int], label: str) -> None:
        records = [_record(t, f"{label} {i}") for i, t in enumerate(times)]
        for record in records:
            arrival[record.message] = len(arrival)
        await storage.write_logs(records)

    try:
        for batch in range(5):  # a burst: 5000 records in the first ms, ids lent up to ~19 buckets ahead
            await write([T0 + (batch * 1000 + i) * 200 for i in range(1000)], f"burst{batch}")
        await write([T0 + 999_000] * 300, "same ms, later")  # the burst's own ms again
        await write([T0 - 5 * MS + i for i in range(300)], "5 ms earlier")  # older than everything stored
        await write([T0 + 3 * MS] * 10, "inside the lent ids")  # a bucket already full of borrowed ids
        await write([T0 + 200 * MS], "far ahead")  # ids are back in step with time: a new run
        await write([T0 + 10 * MS + i for i in range(600)], "late into the lent ids")  # walks the full buckets
        await write([T0 + 2 * MS, T0 - 5 * MS, T0 + 200 * MS, T0], "mixed")  # one batch, every case at once
        page = await storage.search_logs(LogQuery(start_ns=T0 - 5 * MS, end_ns=T0 - 4 * MS, limit=1000))
    finally:
        await storage.close()
    rows = _check_layout(path, arrival)
    assert len(rows) == len({log_id for log_id, _, _ in rows}) == 5000 + 300 + 300 + 10 + 1 + 600 + 4
    early = [log_id for log_id, time_ns, _ in rows if time_ns < T0]
    assert all(log_id >> SLOT_BITS in (BUCKET0 - 5, BUCKET0 - 4) for log_id in early)  # in their own time
    assert len(page.items) == 301


async def test_two_backends_writing_one_file_at_once_keep_every_record(tmp_path):
    """Two stores (two connections, each remembering its own newest ids) take turns on the write lock,
    bursting into the same milliseconds and writing late batches: nothing is lost or overwritten."""
    path = tmp_path / "t.db"
    stores = [SQLiteStorage(config(path)), SQLiteStorage(config(path))]
    for store in stores:
        await store.open()
    arrival: dict[str, int] = {}

    async def writer(number: int, store: SQLiteStorage) -> None:
        for batch in range(12):
            late = batch % 4 == 3
            start = T0 + (batch // 2 - (6 if late else 0)) * MS
            records = [_record(start + i * 1000, f"w{number} b{batch} {i}") for i in range(600)]
            for record in records:
                arrival[record.message] = len(arrival)
            await store.write_logs(records)
            await asyncio.sleep(0)

    try:
        await asyncio.gather(*(writer(number, store) for number, store in enumerate(stores)))
    finally:
        for store in stores:
            await store.close()
    rows = _stored(path)
    assert len(rows) == 2 * 12 * 600
    assert sorted(message for _, _, message in rows) == sorted(arrival)
    spill = _spill(path)
    for log_id, time_ns, _ in rows:
        bucket = logkeys.bucket_of(time_ns)
        assert logkeys.first_id(bucket) <= log_id < logkeys.first_id(bucket + spill + 1)
    for number in range(2):  # each writer's own records keep their arrival order within a bucket
        mine = {message: order for message, order in arrival.items() if message.startswith(f"burst record w{number}")}
        by_bucket: dict[int, list[tuple[int, int]]] = {}
        for log_id, time_ns, message in rows:
            if message in mine:
                by_bucket.setdefault(logkeys.bucket_of(time_ns), []).append((mine[message], log_id))
        for pairs in by_bucket.values():
            assert [log_id for _, log_id in sorted(pairs)] == sorted(log_id for _, log_id in pairs)


# A process writing bursts into the same milliseconds as the test, then one late batch.
OTHER = textwrap.dedent(
    """
    import asyncio, sys
    from tocsin.models import LogRecord
    from tocsin_sqlite import SQLiteStorage

    async def main(path, t0):
        storage = SQLiteStorage(SQLiteStorage.Config(path=path, busy_timeout=30.0))
        await storage.open()
        print("open", flush=True)
        for batch in range(15):
            start = t0 + (batch // 3) * 1_000_000 - (4_000_000 if batch == 14 else 0)
            await storage.write_logs([
                LogRecord(time_ns=start + i * 500, level="info", service="other", message=f"other {batch} {i}")
                for i in range(500)
            ])
        await storage.close()

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


async def test_another_process_bursting_into_the_same_file_loses_nothing(tmp_path):
    path = tmp_path / "t.db"
    storage = SQLiteStorage(config(path, busy_timeout=30.0))
    await storage.open()
    other = await asyncio.create_subprocess_exec(sys.executable, "-c", OTHER, str(path), str(T0),
                                                 stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert await other.stdout.readline() == b"open\n"  # then write while it writes
        finished = asyncio.ensure_future(other.communicate())
        batch = 0
        while not finished.done() or batch < 15:
            start = T0 + (batch % 15 // 3) * MS
            await storage.write_logs([_record(start + i * 700, f"ours {batch} {i}") for i in range(500)])
            batch += 1
        _, errors = await asyncio.wait_for(finished, 120)
    finally:
        if other.returncode is None:
            other.kill()
            await other.wait()
        await storage.close()
    assert other.returncode == 0, errors.decode()
    rows = _stored(path)
    messages = [message for _, _, message in rows]
    assert len(messages) == len(set(messages)) == (15 + batch) * 500
    assert sum(message.startswith("other ") for message in messages) == 15 * 500
    spill = _spill(path)
    for log_id, time_ns, _ in rows:
        bucket = logkeys.bucket_of(time_ns)
        assert logkeys.first_id(bucket) <= log_id < logkeys.first_id(bucket + spill + 1)
