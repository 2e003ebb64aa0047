"""Time partitions of `logs` and `metric_rollups` (native declarative partitioning); retention drops them whole.

Both tables are partitioned by range on a key that is a time: `metric_rollups.start_ns`, and `logs.id`,
which is a time key (`tocsin_sql.logkeys`: an id range is a time range), so the primary key needs no extra
column and a search's id range prunes partitions. Each partition covers `[storage] partition` of time (a day
by default) and is named `<table>_p<start s>_<end s>`; a default partition takes rows outside them (records
from far in the past or future), so a write never fails for want of a partition.

Partitions are created ahead: for the current window and the next two, when the store opens and at every
retention sweep (the leader's). A sweep first drops every partition that ends at or before the cutoff (a
catalog change, however many rows it held), then deletes the rest row by row as on SQLite: the default
partition and the one partition the cutoff falls in.

A new partition has no planner statistics until something ANALYZEs it, and without them the planner guesses
that any searched word is common, walking the whole partition for a word it never holds (13 ms for a rare
code in a 30,000-row partition, 0.1 ms with statistics). Autovacuum analyzes it only after a minute at best,
and not at all where it is turned off, so the log writer gives young partitions their statistics itself
(`analyze_young`): a partition is analyzed, in the writing transaction, when it reaches FIRST_PAGES and each
time it doubles since, until it has YOUNG_PAGES; past that size autovacuum keeps them fresh, and the
planner scales the row counts of older statistics to the partition's current size anyway.

`spans` is not partitioned: a span id must be unique across the table (a later write of the same span
replaces it, `ON CONFLICT (span_id)`), and a partitioned table can only enforce uniqueness on keys that
include its partition key. Spans are swept by chunked deletes, as on SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import errors as pg_errors
from tocsin_sql.logkeys import BUCKET_SHIFT, SLOT_BITS, bucket_of, first_id

from tocsin_postgres.database import PostgresDatabase

SECOND = 1_000_000_000
PARTITIONED = {"logs": "id", "metric_rollups": "start_ns"}
"""Partitioned tables and their partition keys."""
AHEAD = 2
"""Windows created ahead of the current one."""
TSV_STATISTICS = "ALTER TABLE {table} ALTER COLUMN tsv SET STATISTICS 1000"
"""How closely ANALYZE samples the search vectors: with the default (100) a word found in a handful of rows is
estimated at thousands, and the planner walks the whole primary key looking for the newest 100 of them; with
1000 it reads the GIN index for rare words (0.2 ms instead of 300 ms at a million rows)."""

FIRST_PAGES = 32
"""Heap pages (8 kB) at which a partition of logs is first analyzed by the writer: about 1,000 rows."""
YOUNG_PAGES = 2048
"""Heap pages (16 MB, about 60,000 rows) past which the writer leaves a partition's statistics to autovacuum;
the last ANALYZE the writer runs (under 4096 pages) takes about 0.1 s."""
_ANALYZED = "id, time_ns, level, service, logger, trace_id, span_id, execution_id, step, tsv"
"""The columns searches filter on: the message and attributes, the widest, are never compared."""


def key_of(table: str, time_ns: int) -> int:
    """The partition key value where `time_ns` begins in `table` (log ids are time keys)."""
    return first_id(bucket_of(time_ns)) if table == "logs" else time_ns


def make_partitioned(db: PostgresDatabase) -> None:
    """Turn the new (empty) tables into partitioned ones with the same columns and indexes, plus a default."""
    for table, key in PARTITIONED.items():
        db.run(f"CREATE TABLE {table}_partitioned (LIKE {table} INCLUDING ALL) PARTITION BY RANGE ({key})")
        db.run(f"DROP TABLE {table}")
        db.run(f"ALTER TABLE {table}_partitioned RENAME TO {table}")
        db.run(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")


def _partitions(db: PostgresDatabase, table: str) -> list[tuple[str, int, int]]:
    """(name, start s, end s) of a table's time partitions."""
    rows = db.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass", (table,)
    )
    found = []
    for (name,) in rows:
        start, _, end = name.removeprefix(f"{table}_p").partition("_")
        if name.startswith(f"{table}_p") and start.lstrip("-").isdigit() and end.lstrip("-").isdigit():
            found.append((name, int(start), int(end)))
    return found


def ensure(db: PostgresDatabase, now_ns: int, width_s: int) -> list[str]:
    """Create the partitions of the current window and the next AHEAD ones where missing; their names.

    A window some rows of which already sit in the default partition is left to the default partition
    (PostgreSQL refuses a new partition that would take rows from the default one)."""
    created = []
    first = now_ns // SECOND // width_s * width_s
    for table in PARTITIONED:
        have = {(start, end) for _, start, end in _partitions(db, table)}
        for start in range(first, first + (AHEAD + 1) * width_s, width_s):
            end = start + width_s
            if any(start < e and s < end for s, e in have):
                continue
            name = f"{table}_p{start}_{end}"
            lo, hi = key_of(table, start * SECOND), key_of(table, end * SECOND)
            try:
                with db.connection.transaction():
                    db.run(f"CREATE TABLE {name} PARTITION OF {table} FOR VALUES FROM ({lo}) TO ({hi})")
                    if table == "logs":
                        db.run(TSV_STATISTICS.format(table=name))
            except pg_errors.CheckViolation:  # rows of this window already wait in the default partition
                continue
            created.append(name)
    return created


def _name(table: str, start_s: int, width_s: int) -> str:
    return f"{table}_p{start_s}_{start_s + width_s}"


def _log_window(log_id: int, width_s: int) -> int:
    """The start (s) of the window whose partition holds this log id: the last window that begins at or before
    the end of the id's bucket (a partition's bounds are the first ids of the buckets its times begin in)."""
    bucket_end_ns = (((log_id >> SLOT_BITS) + 1) << BUCKET_SHIFT) - 1
    return bucket_end_ns // SECOND // width_s * width_s


def analyze_young(db: PostgresDatabase, log_ids: Sequence[int], width_s: int) -> list[str]:
    """ANALYZE the partitions just written to (those of the batch's first and last ids) that have no statistics
    for their size: at FIRST_PAGES, then each time they double, while smaller than YOUNG_PAGES; their names."""
    if not log_ids:
        return []
    names = sorted({_name("logs", _log_window(log_id, width_s), width_s) for log_id in (min(log_ids), max(log_ids))})
    due = db.fetch(
        "SELECT c.relname FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace "
        "AND c.relname = ANY(%s) AND c.relpages < %s "
        "AND pg_relation_size(c.oid) >= greatest(2 * c.relpages, %s)::bigint * current_setting('block_size')::int",
        (names, YOUNG_PAGES, FIRST_PAGES),
    )
    for (name,) in due:
        db.run(f"ANALYZE {name} ({_ANALYZED})")
    return [name for (name,) in due]


def drop_before(db: PostgresDatabase, table: str, cutoff_ns: int) -> int:
    """Drop every partition of `table` that ends at or before the cutoff; the rows they held."""
    deleted = 0
    for name, _, end in sorted(_partitions(db, table), key=lambda found: found[2]):
        if key_of(table, end * SECOND) <= key_of(table, cutoff_ns):
            deleted += db.fetch(f"SELECT count(*) FROM {name}")[0][0]
            db.run(f"DROP TABLE {name}")
    return deleted
