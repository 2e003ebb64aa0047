"""Sketch merging for PostgreSQL: the stored sketches of a batch's keys read once, merged in Python.

`PostgresDialect.merge_sketches` makes a rollup or tier upsert take the new sketch as it is, so before the
upserts run, every new sketch is replaced by its merge with the sketch stored under the same key (and with
the batch's earlier rows of that key, which the upserts apply one after another). The read and the upserts
share one transaction, under the metrics advisory lock (`tocsin_postgres.pool.METRICS`), so no other writer
changes a stored sketch in between.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tocsin_sql.database import Database
from tocsin_sql.dialect import merge_sketch_blobs
from tocsin_sql.metrics import PreparedRollups

_ROLLUP_SKETCHES = (
    "SELECT r.series_id, r.start_ns, r.sketch FROM metric_rollups r "
    "JOIN unnest(%s::bigint[], %s::bigint[]) AS k(series_id, start_ns) "
    "ON r.series_id = k.series_id AND r.start_ns = k.start_ns WHERE r.sketch IS NOT NULL"
)
_TIER_SKETCHES = (
    "SELECT t.series_id, t.width_s, t.start_ns, t.sketch FROM metric_tiers t "
    "JOIN unnest(%s::bigint[], %s::int[], %s::bigint[]) AS k(series_id, width_s, start_ns) "
    "ON t.series_id = k.series_id AND t.width_s = k.width_s AND t.start_ns = k.start_ns "
    "WHERE t.sketch IS NOT NULL"
)


def _merged(rows: Sequence[tuple[Any, ...]], width: int, stored: dict[tuple[Any, ...], bytes]) -> list[tuple[Any, ...]]:
    """Rows whose sketch (last column) is merged with what is stored, and with earlier rows of the same key."""
    current = dict(stored)
    out = []
    for row in rows:
        key, sketch = row[:width], row[-1]
        if sketch is not None or key in current:
            sketch = merge_sketch_blobs(current.get(key), sketch)
            if sketch is not None:
                current[key] = sketch
            row = (*row[:-1], sketch)
        out.append(row)
    return out


def premerge(db: Database, prepared: PreparedRollups) -> PreparedRollups:
    """The batch with every sketch merged into the stored one of its key (inside the write transaction).

    Every key is looked up, not only those with a new sketch: the upsert writes the row's sketch as it is, so a
    row without one must carry the stored sketch along (as SQLite's merge function keeps it)."""
    rollups, tiers = prepared.rollups, prepared.tiers
    if not any(row[-1] is not None for row in rollups) and not any(row[-1] is not None for row in tiers):
        found = db.fetch("SELECT EXISTS (SELECT 1 FROM metric_rollups WHERE sketch IS NOT NULL "
                         "AND series_id = ANY(%s::bigint[]))", ([row[0] for row in rollups],))
        if not found[0][0]:
            return prepared  # counters and gauges: nothing to merge
    stored = {(sid, start): blob for sid, start, blob in
              db.fetch(_ROLLUP_SKETCHES, ([row[0] for row in rollups], [row[1] for row in rollups]))}
    stored_tiers = {(sid, width, start): blob for sid, width, start, blob in
                    db.fetch(_TIER_SKETCHES, ([row[0] for row in tiers], [row[1] for row in tiers],
                                              [row[2] for row in tiers]))}
    return PreparedRollups(prepared.series, _merged(rollups, 2, stored), _merged(tiers, 3, stored_tiers))
