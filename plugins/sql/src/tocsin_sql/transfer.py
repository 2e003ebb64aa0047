"""Copying a whole store table by table between SQL backends (`tocsin storage copy`), exactly.

The storage protocol answers queries (aggregated metrics, pages of logs), so a copy through it would lose
the raw metric rollups and their sketches. Every SQL backend keeps the same tables (`tocsin_sql.schema`), so
a copy reads each table in primary-key order, a chunk at a time (`read_chunk`), and inserts the rows into the
same table of the other store (`write_chunk`); the command copies into an empty store only. Log rows keep their ids
(time keys) and go through the dialect's `insert_logs`, so the target's full-text index is built
as for any write; surrogate ids (spans, health, transitions, attempts, steps) are left to the target, which
numbers the rows in the order they are copied. Leases are not copied (each store elects its own leader).

`SqlTransfer` gives a backend the two async methods the command calls, on top of its `_read`/`_write` jobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from tocsin_sql.database import Database
from tocsin_sql.dialect import Dialect
from tocsin_sql.logs import COLUMNS as LOG_COLUMNS
from tocsin_sql.logs import insert_statement
from tocsin_sql.schema import leases, logs, metadata, schema_version

CHUNK = 5000
"""Rows per read and per write transaction."""

TABLES: tuple[str, ...] = tuple(
    table.name for table in metadata.sorted_tables if table is not schema_version and table is not leases
)
"""The tables a copy carries, parents before children."""


def _columns(table: sa.Table) -> list[sa.Column]:
    """The columns copied: a log row's as `tocsin_sql.logs` writes them, else all but a surrogate id."""
    if table is logs:
        return list(LOG_COLUMNS)
    return [column for column in table.columns if column is not table.autoincrement_column]


def _key(table: sa.Table) -> list[sa.Column]:
    return list(table.primary_key.columns)


def _select(_: Dialect, name: str, first: bool) -> sa.Select:
    table = metadata.tables[name]
    key = _key(table)
    statement = sa.select(*key, *_columns(table)).order_by(*key).limit(sa.bindparam("limit"))
    if first:
        return statement
    bound = [sa.bindparam(f"k{i}") for i in range(len(key))]
    return statement.where(sa.tuple_(*key) > sa.tuple_(*bound) if len(key) > 1 else key[0] > bound[0])


def _insert(d: Dialect, name: str) -> sa.ClauseElement:
    table = metadata.tables[name]
    values = {column.key: sa.bindparam(column.key) for column in _columns(table)}
    return d.insert(table).values(values).on_conflict_do_nothing()


def read_chunk(db: Database, name: str, after: Sequence[Any] | None) -> tuple[list[tuple[Any, ...]], Any]:
    """Up to CHUNK rows of a table after the key `after` (from the start when None), and the last key read."""
    width = len(_key(metadata.tables[name]))
    params: dict[str, Any] = {"limit": CHUNK}
    if after is not None:
        params.update({f"k{i}": value for i, value in enumerate(after)})
    rows = db.fetch(db.sql(_select, name, after is None), params)
    flags = [i for i, column in enumerate(_columns(metadata.tables[name])) if isinstance(column.type, sa.Boolean)]
    values = [list(row[width:]) for row in rows]
    for row in values:  # SQLite answers booleans as 0/1, which PostgreSQL will not take for a boolean
        for i in flags:
            row[i] = None if row[i] is None else bool(row[i])
    return [tuple(row) for row in values], (tuple(rows[-1][:width]) if rows else None)


def write_chunk(db: Database, name: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert copied rows (in `read_chunk`'s column order), keeping what the target already has."""
    if not rows:
        return
    if name == logs.name:
        db.dialect.insert_logs(db, db.sql(insert_statement), rows)
        return
    db.run_many(db.sql(_insert, name), list(rows))


class SqlTransfer:
    """`export_chunk`/`import_chunk` for a backend class that runs tocsin-sql jobs with its own `_read(job,
    doing)` and `_write(job, doing)` (as the sqlite and postgres backends do)."""

    async def export_chunk(self, table: str, after: Any) -> tuple[list[tuple[Any, ...]], Any]:
        """Up to CHUNK rows of `table` after the key `after` (None: from the start), and the key to go on from."""
        return await self._read(  # type: ignore[attr-defined]
            lambda db: read_chunk(db, table, after), f"read {table} to copy")

    async def import_chunk(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        """Insert rows `export_chunk` read from another store, in one write transaction."""
        await self._write(  # type: ignore[attr-defined]
            lambda db: write_chunk(db, table, rows), f"copy {len(rows)} rows into {table}")
