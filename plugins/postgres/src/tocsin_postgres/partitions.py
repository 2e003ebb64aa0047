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

`spans` is not partitioned: a span id must be unique across the table (a later write of the same span
replaces it, `ON CONFLICT (span_id)`), and a partitioned table can only enforce uniqueness on keys that
include its partition key. Spans are swept by chunked deletes, as on SQLite.
"""

from __future__ import annotations

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
            name = partition_name(table, start, width_s)
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


def partition_name(table: str, start_s: int, width_s: int) -> str:
    """The name of the partition of `table` for the window that starts at `start_s`."""
    return f"{table}_p{start_s}_{start_s + width_s}"


def log_window(log_id: int, width_s: int) -> int:
    """The start (s) of the window whose partition holds this log id: the last window that begins at or before
    the end of the id's bucket (a partition's bounds are the first ids of the buckets its times begin in)."""
    bucket_end_ns = (((log_id >> SLOT_BITS) + 1) << BUCKET_SHIFT) - 1
    return bucket_end_ns // SECOND // width_s * width_s


def drop_before(db: PostgresDatabase, table: str, cutoff_ns: int) -> int:
    """Drop every partition of `table` that ends at or before the cutoff; the rows they held."""
    deleted = 0
    for name, _, end in sorted(_partitions(db, table), key=lambda found: found[2]):
        if key_of(table, end * SECOND) <= key_of(table, cutoff_ns):
            deleted += db.fetch(f"SELECT count(*) FROM {name}")[0][0]
            db.run(f"DROP TABLE {name}")
    return deleted
