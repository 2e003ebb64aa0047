"""The notification outbox: deliveries, leases and attempts.

Claiming is a read and an update in one write transaction, so two dispatchers (threads, or processes on
one database) never take the same delivery while its lease runs; an expired lease makes a delivery
claimable again, so a crash between sending and recording re-sends rather than loses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from tocsin.ext import Delivery, DeliveryAttempt, DeliveryQuery, DeliveryState, Page, StorageError
from tocsin_sql import codec, paging
from tocsin_sql.database import Database, one_of
from tocsin_sql.dialect import Dialect
from tocsin_sql.schema import deliveries, delivery_attempts

DELIVERY_COLUMNS = tuple(deliveries.c)
ATTEMPT_COLUMNS = tuple(column for column in delivery_attempts.c if column.key != "id")
FINAL_STATES = ("sent", "failed", "dropped")


def encode_delivery(delivery: Delivery) -> tuple[Any, ...]:
    """A delivery as a row (DELIVERY_COLUMNS order)."""
    return tuple(
        codec.pack(delivery.payload, "Delivery") if column.key == "payload" else getattr(delivery, column.key)
        for column in DELIVERY_COLUMNS
    )


def _decode_delivery(row: Sequence[Any]) -> Delivery:
    fields = {column.key: value for column, value in zip(DELIVERY_COLUMNS, row, strict=True)}
    fields["payload"] = codec.unpack_dict(fields["payload"])
    return Delivery(**fields)


def encode_attempt(attempt: DeliveryAttempt) -> tuple[Any, ...]:
    """An attempt as a row (ATTEMPT_COLUMNS order)."""
    return tuple(getattr(attempt, column.key) for column in ATTEMPT_COLUMNS)


def _insert_deliveries(d: Dialect) -> sa.ClauseElement:
    return d.insert(deliveries).on_conflict_do_nothing(index_elements=[deliveries.c.id])


def enqueue(db: Database, rows: list[tuple[Any, ...]]) -> None:
    """Add encoded deliveries; an id already there is left as it is (enqueueing is idempotent)."""
    if rows:
        db.run_many(db.sql(_insert_deliveries), rows)


def _due(_: Dialect) -> sa.Select:
    d = deliveries.c
    now = sa.bindparam("now")
    return (
        sa.select(*DELIVERY_COLUMNS)
        .where(
            one_of(d.state, ("pending", "sending")),
            d.next_attempt_ns <= now,
            sa.or_(d.lease_until_ns.is_(None), d.lease_until_ns <= now),
        )
        .order_by(d.created_ns, d.id)
        .limit(sa.bindparam("limit"))
    )


def _lease(_: Dialect) -> sa.Update:
    return (
        sa.update(deliveries)
        .where(deliveries.c.id == sa.bindparam("key"))
        .values(state="sending", lease_until_ns=sa.bindparam("lease"))
    )


def claim(db: Database, now_ns: int, limit: int, lease_s: float) -> list[Delivery]:
    """Take up to `limit` due deliveries, oldest (created) first, and lease them for `lease_s`."""
    if limit <= 0:
        return []
    lease = now_ns + round(lease_s * 1e9)
    claimed = [_decode_delivery(row) for row in db.fetch(db.sql(_due), {"now": now_ns, "limit": limit})]
    db.run_many(db.sql(_lease), [{"lease": lease, "key": delivery.id} for delivery in claimed])
    for delivery in claimed:
        delivery.state, delivery.lease_until_ns = "sending", lease
    return claimed


def _get(_: Dialect) -> sa.Select:
    return sa.select(*DELIVERY_COLUMNS).where(deliveries.c.id == sa.bindparam("id"))


def get_delivery(db: Database, delivery_id: str) -> Delivery | None:
    """One delivery by id."""
    row = db.fetch_one(db.sql(_get), {"id": delivery_id})
    return None if row is None else _decode_delivery(row)


def _insert_attempt(_: Dialect) -> sa.Insert:
    return sa.insert(delivery_attempts).values({c.key: sa.bindparam(c.key) for c in ATTEMPT_COLUMNS})


def _record(_: Dialect) -> sa.Update:
    d = deliveries.c
    return (
        sa.update(deliveries)
        .where(d.id == sa.bindparam("key"))
        .values(
            state=sa.bindparam("new_state"),
            attempts=d.attempts + 1,
            lease_until_ns=None,
            last_error=sa.bindparam("error"),
            sent_ns=sa.case((sa.bindparam("new_state") == "sent", sa.bindparam("time")), else_=d.sent_ns),
            next_attempt_ns=sa.func.coalesce(sa.bindparam("next_attempt"), d.next_attempt_ns),
        )
    )


def record_attempt(
    db: Database, attempt: DeliveryAttempt, state: DeliveryState, next_attempt_ns: int | None
) -> None:
    """Log an attempt and move its delivery to `state`, releasing the lease."""
    params = {
        "key": attempt.delivery_id,
        "new_state": state,
        "error": attempt.error,
        "time": attempt.time_ns,
        "next_attempt": next_attempt_ns,
    }
    if db.run(db.sql(_record), params) == 0:
        raise StorageError(f"cannot record an attempt for unknown delivery {attempt.delivery_id!r}")
    db.run(db.sql(_insert_attempt), encode_attempt(attempt))


def _list(_: Dialect, channel: bool, fingerprint: bool, state: bool, cursor: bool, count: bool) -> sa.Select:
    d = deliveries.c
    where = []
    if channel:
        where.append(d.channel == sa.bindparam("channel"))
    if fingerprint:
        where.append(d.fingerprint == sa.bindparam("fingerprint"))
    if state:
        where.append(d.state == sa.bindparam("state"))
    if cursor:
        where.append(paging.before(d.created_ns, d.id))
    if count:
        return sa.select(sa.func.count()).select_from(deliveries).where(*where)
    return sa.select(*DELIVERY_COLUMNS).where(*where).order_by(d.created_ns.desc(), d.id.desc()).limit(
        sa.bindparam("limit")
    )


def list_deliveries(db: Database, query: DeliveryQuery) -> Page[Delivery]:
    """Outbox entries passing every filter, newest (created) first."""
    paging.check_limit(query.limit)
    after = paging.cursor_key(query.cursor, tuple[int, str])
    params = {"channel": query.channel, "fingerprint": query.fingerprint, "state": query.state,
              "limit": query.limit + 1, **after}
    shape = (query.channel is not None, query.fingerprint is not None, query.state is not None)
    total = db.fetch(db.sql(_list, *shape, False, True), params)[0][0]
    rows = db.fetch(db.sql(_list, *shape, bool(after), False), params)
    items = [_decode_delivery(row) for row in rows]
    return paging.page(items, query.limit, lambda d: (d.created_ns, d.id), total)


def _attempts(_: Dialect) -> sa.Select:
    a = delivery_attempts.c
    return sa.select(*ATTEMPT_COLUMNS).where(a.delivery_id == sa.bindparam("id")).order_by(a.time_ns, a.id)


def list_attempts(db: Database, delivery_id: str) -> list[DeliveryAttempt]:
    """Every attempt of one delivery, oldest first."""
    rows = db.fetch(db.sql(_attempts), {"id": delivery_id})
    return [DeliveryAttempt(**{c.key: v for c, v in zip(ATTEMPT_COLUMNS, row, strict=True)}) for row in rows]
