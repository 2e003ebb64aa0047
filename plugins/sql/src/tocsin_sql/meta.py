"""Integer settings a store keeps about itself, in the `tocsin_meta` table (see schema.META_*)."""

from __future__ import annotations

import sqlalchemy as sa

from tocsin_sql.database import Database
from tocsin_sql.dialect import Dialect
from tocsin_sql.schema import meta


def _get(_: Dialect) -> sa.Select:
    return sa.select(meta.c.value).where(meta.c.key == sa.bindparam("key"))


def _raise(d: Dialect) -> sa.ClauseElement:
    insert = d.insert(meta)
    return insert.on_conflict_do_update(
        index_elements=[meta.c.key], set_={"value": d.greatest(meta.c.value, insert.excluded.value)}
    )


def get(db: Database, key: str, default: int | None) -> int | None:
    """The value under `key`, or `default`."""
    row = db.fetch_one(db.sql(_get), {"key": key})
    return default if row is None else row[0]


def raise_to(db: Database, key: str, value: int) -> None:
    """Set `key` to `value` unless it already holds more (values only grow)."""
    db.run(db.sql(_raise), {"key": key, "value": value})
