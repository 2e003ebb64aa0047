"""Named leases: which of the processes sharing a store holds one, until when (see `schema.leases`).

Taking a lease is one statement, an upsert whose update only happens when the stored lease has expired or
already belongs to the caller, so two processes racing for it cannot both win: the database serializes the
statements, and the loser's update matches no row (0 rows changed). A renewal is the same statement.
Arguments are checked by the backend first (`tocsin.ext.check_lease`).
"""

from __future__ import annotations

import sqlalchemy as sa

from tocsin_sql.database import Database
from tocsin_sql.dialect import Dialect
from tocsin_sql.schema import leases


def _take(d: Dialect) -> sa.ClauseElement:
    insert = d.insert(leases).values(
        name=sa.bindparam("name"), holder=sa.bindparam("holder"), expires_ns=sa.bindparam("expires")
    )
    return insert.on_conflict_do_update(
        index_elements=[leases.c.name],
        set_={"holder": insert.excluded.holder, "expires_ns": insert.excluded.expires_ns},
        where=sa.or_(leases.c.expires_ns <= sa.bindparam("now"), leases.c.holder == insert.excluded.holder),
    )


def _release(_: Dialect) -> sa.Delete:
    return sa.delete(leases).where(leases.c.name == sa.bindparam("name"), leases.c.holder == sa.bindparam("holder"))


def _holder(_: Dialect) -> sa.Select:
    current = sa.and_(leases.c.name == sa.bindparam("name"), leases.c.expires_ns > sa.bindparam("now"))
    return sa.select(leases.c.holder).where(current)


def acquire(db: Database, name: str, holder: str, ttl_s: float, now_ns: int) -> bool:
    """Take or renew the lease `name` for `holder` until now + ttl when it is free, expired or `holder`'s;
    True when `holder` holds it afterwards (inside the caller's write transaction)."""
    params = {"name": name, "holder": holder, "expires": now_ns + round(ttl_s * 1e9), "now": now_ns}
    return db.run(db.sql(_take), params) > 0


def release(db: Database, name: str, holder: str) -> None:
    """Give the lease `name` up if `holder` holds it."""
    db.run(db.sql(_release), {"name": name, "holder": holder})


def holder(db: Database, name: str, now_ns: int) -> str | None:
    """Who holds the lease `name` at `now_ns`, or None."""
    row = db.fetch_one(db.sql(_holder), {"name": name, "now": now_ns})
    return None if row is None else row[0]
