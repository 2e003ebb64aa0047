"""Schema versioning: create a new database at the current version, upgrade an older one in place.

The `schema_version` table holds one row per version applied (when, and what it did). At open, a backend
calls `upgrade` inside one write transaction: a database without tocsin tables is created from the
current metadata (`schema.SCHEMA_VERSION`); an older one runs every migration above its version, in
order; a newer one is refused with SchemaVersionError, because this code would misread it. A migration is
a numbered function of a `Database`, so every dialect runs the same upgrade steps.

History:
  1  the first release
  2  metric_tiers: per-minute and per-hour merges of every series, backfilled from metric_rollups
  3  leases: the named leases processes sharing a store take turns on (one leader per database)
  4  notify_groups, notify_members, notify_marks: notification grouping state kept across restarts
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.schema import CreateIndex, CreateTable

from tocsin.ext import SchemaVersionError, StorageError
from tocsin_sql import metrics
from tocsin_sql.database import Database
from tocsin_sql.dialect import Dialect, decode_sketch
from tocsin_sql.schema import (
    SCHEMA_VERSION,
    leases,
    metadata,
    metric_rollups,
    metric_tiers,
    notify_groups,
    notify_marks,
    notify_members,
    schema_version,
)
from tocsin_sql.tiers import RollupRow, fold

_BACKFILL_CHUNK = 5000


class Migration(NamedTuple):
    """One in-place upgrade: from `version - 1` to `version`."""

    version: int
    description: str
    upgrade: Callable[[Database], None]


class Outcome(NamedTuple):
    """What `upgrade` found and did: the version before (None for a new database) and after."""

    found: int | None
    version: int


def create_table(db: Database, table: sa.Table) -> None:
    """Create one table of the current metadata with its indexes."""
    db.run(db.statements.compile(CreateTable(table)).sql)
    for index in sorted(table.indexes, key=lambda index: index.name or ""):
        db.run(db.statements.compile(CreateIndex(index)).sql)


def _rollups_after(_: Dialect) -> sa.Select:
    r = metric_rollups.c
    after = sa.or_(
        r.series_id > sa.bindparam("series"),
        sa.and_(r.series_id == sa.bindparam("series"), r.start_ns > sa.bindparam("start")),
    )
    return (
        sa.select(r.series_id, r.start_ns, r.count, r.sum, r.min, r.max, r["last"], r.sketch)
        .where(after)
        .order_by(r.series_id, r.start_ns)
        .limit(_BACKFILL_CHUNK)
    )


def _add_metric_tiers(db: Database) -> None:
    """Version 2: create metric_tiers and fold every stored rollup into it."""
    create_table(db, metric_tiers)
    position = {"series": -(2**63), "start": -(2**63)}
    while rows := db.fetch(db.sql(_rollups_after), position):
        metrics.write_tiers(db, metrics.encode_tiers(fold(RollupRow(*row[:7], decode_sketch(row[7])) for row in rows)))
        position = {"series": rows[-1][0], "start": rows[-1][1]}


def _add_leases(db: Database) -> None:
    """Version 3: create the (empty) leases table; whoever opens the file next takes the lead."""
    create_table(db, leases)


def _add_group_state(db: Database) -> None:
    """Version 4: create the (empty) grouping state tables; groups in flight start over once, as before."""
    for table in (notify_groups, notify_members, notify_marks):
        create_table(db, table)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(2, "metric_tiers: per-minute and per-hour merges of every series, backfilled", _add_metric_tiers),
    Migration(3, "leases: which process leads (evaluates, dispatches, checks health, sweeps)", _add_leases),
    Migration(4, "notify_groups, notify_members, notify_marks: notification grouping kept across restarts",
              _add_group_state),
    Migration(5, "log search index: 'this level or worse' as one token (SQLite), as one index (PostgreSQL)",
              lambda db: db.dialect.reindex_logs(db)),
)


def _record(_: Dialect) -> sa.Insert:
    return sa.insert(schema_version)


def _version(_: Dialect) -> sa.Select:
    return sa.select(sa.func.max(schema_version.c.version))


def upgrade(db: Database, now_ns: int, where: str) -> Outcome:
    """Bring the database at `where` (a path or URL, for messages) to SCHEMA_VERSION, inside the caller's
    write transaction; SchemaVersionError when it is newer than this code."""
    tables = db.dialect.table_names(db)
    ours = set(metadata.tables)
    if schema_version.name not in tables:
        if tables:
            kind = "an incomplete tocsin database" if tables & ours else "not a tocsin database"
            raise StorageError(
                f"{where} is {kind}: it has tables ({', '.join(sorted(tables)[:5])}) but no schema_version "
                "table; point storage at a new file or at a database tocsin created"
            )
        for table in metadata.sorted_tables:
            create_table(db, table)
        db.dialect.create_extras(db)
        db.run(db.sql(_record), (SCHEMA_VERSION, now_ns, f"created at version {SCHEMA_VERSION}"))
        return Outcome(None, SCHEMA_VERSION)
    (found,) = db.fetch_one(db.sql(_version)) or (None,)
    if found is None:
        raise StorageError(f"{where} has an empty schema_version table; it was not created by tocsin")
    if found > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{where} has schema version {found}, but this tocsin-sql understands versions up to "
            f"{SCHEMA_VERSION}: it was written by a newer tocsin. Upgrade tocsin, or point storage at another file."
        )
    for migration in MIGRATIONS:
        if migration.version > found:
            migration.upgrade(db)
            db.run(db.sql(_record), (migration.version, now_ns, migration.description))
    return Outcome(found, SCHEMA_VERSION)
