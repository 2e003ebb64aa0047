"""Planner statistics for young log partitions, given by the writer as they fill.

A new partition has no statistics until something ANALYZEs it, and without them the planner guesses that any
searched word is common: it walks the whole partition for a word it never holds (13 ms for a rare code in a
30,000-row partition; about 1 ms with statistics and a short GIN pending list, `tocsin_postgres.dialect`).
Autovacuum analyzes a partition a minute later at best, and not at all where it is turned off, so the log
writer does it for young partitions, in the writing transaction (ANALYZE counts the transaction's own rows;
SKIP_LOCKED, so a write never waits for a VACUUM of the partition): when one reaches FIRST_PAGES, then each
time it doubles, until it has YOUNG_PAGES. Older partitions are left to autovacuum; the planner scales the row
counts of their statistics to their current size anyway, and a partition's first 50,000 rows say well enough
which words are rare.
"""

from __future__ import annotations

from collections.abc import Sequence

from tocsin_sql.logs import COLUMNS

from tocsin_postgres.database import PostgresDatabase
from tocsin_postgres.partitions import log_window, partition_name

FIRST_PAGES = 32
"""Heap pages (8 kB) at which the writer first analyzes a partition of logs: about 1,000 rows."""
YOUNG_PAGES = 2048
"""Heap pages (16 MB, about 60,000 rows) from which the writer leaves a partition to autovacuum; the last
ANALYZE it runs, on at most twice as many pages, takes about 0.1 s."""
_COLUMNS = ", ".join([*(column.key for column in COLUMNS if column.key not in ("message", "attributes")), "tsv"])
"""The columns searches filter on: the message and attributes, the widest, are never compared."""
_DUE = (
    "SELECT c.relname, c.relpages >= %s, pg_relation_size(c.oid) >= greatest(2 * c.relpages, %s)::bigint "
    "* current_setting('block_size')::int FROM pg_class c "
    "WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY(%s)"
)


class YoungPartitions:
    """One writer's view of which log partitions are still young: the others cost it no query."""

    def __init__(self, width_s: int) -> None:
        self.width_s = width_s
        self._settled: set[str] = set()  # partitions past YOUNG_PAGES, or windows without one (the default's)

    def analyze(self, db: PostgresDatabase, log_ids: Sequence[int]) -> list[str]:
        """ANALYZE the young partitions just written to (those of the batch's first and last ids) that have
        doubled since their last statistics (or reached FIRST_PAGES without any); their names."""
        if not log_ids:
            return []
        names = {partition_name("logs", log_window(log_id, self.width_s), self.width_s)
                 for log_id in (min(log_ids), max(log_ids))} - self._settled
        if not names:
            return []
        found = {name: (grown, due) for name, grown, due in db.fetch(_DUE, (YOUNG_PAGES, FIRST_PAGES, sorted(names)))}
        self._settled |= {name for name in names if name not in found or found[name][0]}
        analyzed = sorted(name for name, (grown, due) in found.items() if due and not grown)
        for name in analyzed:
            db.run(f"ANALYZE (SKIP_LOCKED) {name} ({_COLUMNS})")
        return analyzed
