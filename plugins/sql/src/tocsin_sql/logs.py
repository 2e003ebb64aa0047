"""Log rows: encoding, time-key ids, and the dialect-neutral part of writing and reading them.

Full-text search is the dialect's (`Dialect.insert_logs` indexes, each backend searches); everything here is
shared. Levels are stored as their index in `tocsin.models.LOG_LEVELS` (one byte, and "warning or worse"
is a range).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from tocsin.ext import LOG_LEVELS, LogRecord, UnstorableRecord
from tocsin_sql import codec, ids, meta
from tocsin_sql.database import Database
from tocsin_sql.dialect import Dialect
from tocsin_sql.logkeys import LogKeys
from tocsin_sql.schema import META_LOG_SPILL, logs

LEVEL_CODES: dict[str, int] = {level: code for code, level in enumerate(LOG_LEVELS)}

COLUMNS = (
    logs.c.id,
    logs.c.time_ns,
    logs.c.level,
    logs.c.service,
    logs.c.logger,
    logs.c.trace_id,
    logs.c.span_id,
    logs.c.execution_id,
    logs.c.step,
    logs.c.message,
    logs.c.attributes,
)
"""The order of a stored log row, as `encode` (with the id first) and `decode` use it."""

_MAX_TIME = 2**63 - 1

EncodedLog = tuple[Any, ...]
"""A log row without its id: (time_ns, level, service, logger, trace, span, execution, step, message, attrs)."""


def encode(record: LogRecord) -> EncodedLog:
    """A LogRecord as a row (id not yet assigned); bad levels, ids or values are an UnstorableRecord."""
    level = LEVEL_CODES.get(record.level)
    if level is None:
        raise UnstorableRecord(f"LogRecord level {record.level!r} is not one of {', '.join(LOG_LEVELS)}")
    if not -_MAX_TIME <= record.time_ns <= _MAX_TIME:
        raise UnstorableRecord(f"LogRecord time_ns {record.time_ns} does not fit in 64 bits",
                               reason="number_out_of_range")
    trace_id, span_id, attributes = record.trace_id, record.span_id, record.attributes
    return (  # None and {} tested inline: most records have neither ids nor attributes, and calls cost
        record.time_ns,
        level,
        record.service,
        record.logger,
        None if trace_id is None else ids.trace_bytes(trace_id, "LogRecord trace_id"),
        None if span_id is None else ids.span_bytes(span_id, "LogRecord span_id"),
        record.execution_id,
        record.step,
        record.message,
        None if type(attributes) is dict and not attributes else codec.pack(attributes, "LogRecord"),
    )


def decode(row: Sequence[Any]) -> LogRecord:
    """A stored row (in COLUMNS order) back as a LogRecord."""
    return LogRecord(
        id=row[0],
        time_ns=row[1],
        level=LOG_LEVELS[row[2]],
        service=row[3],
        logger=row[4],
        trace_id=None if row[5] is None else row[5].hex(),
        span_id=None if row[6] is None else row[6].hex(),
        execution_id=row[7],
        step=row[8],
        message=row[9],
        attributes=codec.unpack_dict(row[10]),
    )


def insert_statement(_: Dialect) -> sa.Insert:
    """One stored log row (`COLUMNS` order, id included); `insert` and `tocsin_sql.transfer` run it."""
    return sa.insert(logs).values({column.key: sa.bindparam(column.key) for column in COLUMNS})


def _top(_: Dialect) -> sa.Select:
    return sa.select(sa.func.max(logs.c.id))


def _highest_in(_: Dialect) -> sa.Select:
    return sa.select(sa.func.max(logs.c.id)).where(logs.c.id >= sa.bindparam("lo"), logs.c.id < sa.bindparam("hi"))


def insert(db: Database, rows: Sequence[EncodedLog], keys: LogKeys | None = None) -> None:
    """Give rows their time-key ids, insert them and index their text (inside the caller's write transaction).

    `keys` is the writer's `LogKeys`, kept from one write to the next so that bursts cost no lookups (a new
    one, remembering nothing, when None). The largest stored id is read here, under the write lock, every
    time: it is what makes ids unique even when another process writes the same store.
    """
    (top,) = db.fetch_one(db.sql(_top)) or (None,)
    highest = db.sql(_highest_in)

    def highest_in(lo: int, hi: int) -> int | None:
        return db.fetch(highest, (lo, hi))[0][0]

    assignment = (keys or LogKeys()).assign([row[0] for row in rows], top, highest_in)
    stored = [(log_id, *row) for log_id, row in zip(assignment.ids, rows, strict=True)]
    db.dialect.insert_logs(db, db.sql(insert_statement), stored)
    if assignment.spill:
        meta.raise_to(db, META_LOG_SPILL, assignment.spill)


def spill(db: Database) -> int:
    """The largest number of buckets any log id has been lent ahead of its time (see logkeys)."""
    return meta.get(db, META_LOG_SPILL, None) or 0
