"""Keeping the file in shape: WAL checkpoints after commits, and returning freed pages after sweeps.

Checkpoints. SQLite checkpoints the WAL passively every 1000 pages, but a passive checkpoint cannot reset
the WAL while any reader still uses it, so with readers always overlapping (or one long reader) the WAL
grows without bound (RELIABILITY.md section 1: 91 MB after 20k inserts with one open reader). After each
commit the writer looks at the WAL's size; past `wal_limit` it runs a passive checkpoint (which never
waits) and then `wal_checkpoint(TRUNCATE)`, which waits at most CHECKPOINT_WAIT for readers of older
snapshots to finish (new readers do not hold it up) and resets the WAL to zero bytes. When the passive
checkpoint could not copy every frame, some reader holds an older snapshot: the truncating attempt is then
made at most every `retry` seconds, which doubles after each failure (up to RETRY_MAX) and drops back after
a success, or sooner once the WAL has grown by half again (at least by `wal_limit`) since the failed
attempt: overlapping short readers cost a short wait now and then and let the WAL grow by about one limit
per failed attempt, however long the back-off, while one long reader costs a wait each time the WAL grows
by half (60 batches past a pinned reader: 1.17 s instead of 0.81). The WAL
shrinks at the first commit after that reader is done; a warning is logged once when it passes four times
the limit. tocsin's own reads end within `query_timeout`.

Full-text index. FTS5 appends each transaction's rows as a new segment and merges segments as they pile up
(about nine remain at a million rows). Every query seeks every segment, so after each retention sweep the
writer merges the index into one segment, MERGE_STEP pages per short write transaction (about 2 s of work
in 30-odd steps at a million rows, with ingest going on between them); queries then run 20-35% faster.

Vacuum. Deleted rows leave free pages, which later writes reuse, so a store under a steady retention
stops growing. tocsin never runs a full VACUUM (it rewrites the whole file under an exclusive lock and
needs twice the space). New files use `auto_vacuum = INCREMENTAL`; after a retention sweep (and the index
merge, which frees pages too), when free pages exceed FREE_SHARE_HIGH of the file, they are released until
at most FREE_SHARE_LOW of what remains is free, in steps of at most VACUUM_STEP pages, each its own short
write transaction (`FreePageRelease`). `PRAGMA incremental_vacuum(N)` frees one page per `sqlite3_step`,
and Python's sqlite3 steps a statement without result columns only once, so it would free one page, not N:
each step therefore runs `incremental_vacuum(1)` once per page, which frees exactly one page whatever the
Python version does.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import time

from tocsin_sqlite.connection import SQLiteDatabase
from tocsin_sqlite.dialect import FTS_TABLE

log = logging.getLogger("tocsin.sqlite")

CHECKPOINT_WAIT = 0.1
"""Seconds a truncating checkpoint waits for readers of older snapshots before giving up for now."""
RETRY_MIN = 0.2
RETRY_MAX = 5.0
FREE_SHARE_HIGH = 0.25
FREE_SHARE_LOW = 0.10
VACUUM_STEP = 2000


class Checkpointer:
    """Called by the writer after every commit: truncates the WAL once it is larger than the limit."""

    def __init__(self, path: str, wal_limit_bytes: int, busy_timeout: float) -> None:
        self.wal_path = path + "-wal"
        self.limit = wal_limit_bytes
        self.busy_timeout_ms = round(busy_timeout * 1000)
        self.retry = RETRY_MIN
        self.next_try = 0.0
        self.next_size = 0  # the WAL size from which a truncation is tried again during the back-off
        self.warned = False
        self.checkpoints = 0

    def wal_size(self) -> int:
        """The WAL file's size in bytes (0 when there is none)."""
        try:
            return os.stat(self.wal_path).st_size
        except FileNotFoundError:
            return 0

    def __call__(self, db: SQLiteDatabase) -> None:
        size = self.wal_size()
        if size <= self.limit:
            return
        connection = db.connection
        _, frames, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        now = time.monotonic()
        if frames != copied and now < self.next_try and size < self.next_size:
            return
        if self._truncate(connection):
            self.checkpoints += 1
            self.retry, self.warned = RETRY_MIN, False
            return
        self.next_try, self.retry = now + self.retry, min(2 * self.retry, RETRY_MAX)
        self.next_size = size + max(self.limit, size // 2)
        if not self.warned and size > 4 * self.limit:
            self.warned = True
            log.warning(
                "tocsin: the SQLite WAL %s is %d MB: a reader has held an old snapshot for a long time, so it "
                "cannot be checkpointed; it shrinks as soon as that reader finishes",
                self.wal_path, size // 2**20,
            )


    def _truncate(self, connection: sqlite3.Connection) -> bool:
        connection.execute(f"PRAGMA busy_timeout = {round(CHECKPOINT_WAIT * 1000)}")
        try:
            busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.OperationalError:
            busy = 1
        finally:
            connection.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
        return not busy


MERGE_STEP = 500
"""Index pages one merge step rewrites (one write transaction of ~75 ms here)."""


def merge_index_step(db: SQLiteDatabase) -> bool:
    """One step of merging the FTS5 index towards a single segment; False once there is nothing left."""
    before = db.connection.total_changes
    db.connection.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rank) VALUES ('merge', {-MERGE_STEP})")
    return db.connection.total_changes - before > 1


def free_pages_to_release(db: SQLiteDatabase, above: float = FREE_SHARE_HIGH) -> int:
    """Free pages to give back now: none unless auto_vacuum is incremental and more than `above` of the file is
    free; else enough that at most FREE_SHARE_LOW of the smaller file stays free, up to VACUUM_STEP."""
    connection = db.connection
    if connection.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
        return 0
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    free = connection.execute("PRAGMA freelist_count").fetchone()[0]
    if pages == 0 or free <= above * pages or free <= FREE_SHARE_LOW * pages:
        return 0
    # releasing x pages leaves free - x of pages - x: the least x with free - x <= LOW * (pages - x)
    return min(VACUUM_STEP, free, math.ceil((free - FREE_SHARE_LOW * pages) / (1 - FREE_SHARE_LOW)))


def release_pages(db: SQLiteDatabase, count: int) -> int:
    """Give `count` free pages back to the file system (in the caller's write transaction); pages released.

    One `incremental_vacuum(1)` per page: Python's sqlite3 steps `incremental_vacuum(N)` once, freeing one page.
    """
    connection = db.connection
    before = connection.execute("PRAGMA freelist_count").fetchone()[0]
    for _ in range(count):
        connection.execute("PRAGMA incremental_vacuum(1)")
    return before - connection.execute("PRAGMA freelist_count").fetchone()[0]


class FreePageRelease:
    """Releasing free pages after a sweep, one write transaction per `step` (hysteresis over the steps).

    It starts only when more than FREE_SHARE_HIGH of the file is free, then goes on, VACUUM_STEP pages a step,
    until at most FREE_SHARE_LOW of the file is free. `step` returns the pages it released: 0 when done.
    """

    def __init__(self) -> None:
        self.started = False

    def step(self, db: SQLiteDatabase) -> int:
        count = free_pages_to_release(db, FREE_SHARE_LOW if self.started else FREE_SHARE_HIGH)
        released = release_pages(db, count) if count > 0 else 0
        self.started = self.started or released > 0
        return released
