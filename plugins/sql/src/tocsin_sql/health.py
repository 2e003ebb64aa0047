"""Health check results: appended, read back per component newest first."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tocsin.ext import HealthResult, HealthStatus
from tocsin_sql import codec, paging
from tocsin_sql.database import Database
from tocsin_sql.dialect import Dialect
from tocsin_sql.schema import health

COLUMNS = tuple(column for column in health.c if column.key != "id")


def encode(result: HealthResult) -> tuple[Any, ...]:
    """A result as a row (COLUMNS order)."""
    return tuple(
        codec.pack(result.details, "HealthResult") if column.key == "details" else getattr(result, column.key)
        for column in COLUMNS
    )


def _insert(_: Dialect) -> sa.Insert:
    return sa.insert(health).values({c.key: sa.bindparam(c.key) for c in COLUMNS})


def write(db: Database, rows: list[tuple[Any, ...]]) -> None:
    """Append encoded results (inside the caller's transaction)."""
    db.run_many(db.sql(_insert), rows)


def _history(_: Dialect, start: bool, end: bool, status: bool) -> sa.Select:
    h = health.c
    where = [h.component == sa.bindparam("component")]
    if start:
        where.append(h.time_ns >= sa.bindparam("start"))
    if end:
        where.append(h.time_ns < sa.bindparam("end"))
    if status:
        where.append(h.status == sa.bindparam("status"))
    return sa.select(*COLUMNS).where(*where).order_by(h.time_ns.desc(), h.id.desc()).limit(sa.bindparam("limit"))


def history(
    db: Database, component: str, start_ns: int | None, end_ns: int | None, limit: int, status: HealthStatus | None
) -> list[HealthResult]:
    """A component's results in [start_ns, end_ns), newest first (the later write first on a tie)."""
    paging.check_limit(limit)
    statement = db.sql(_history, start_ns is not None, end_ns is not None, status is not None)
    params = {"component": component, "start": start_ns, "end": end_ns, "status": status, "limit": limit}
    results = []
    for row in db.fetch(statement, params):
        fields = {column.key: value for column, value in zip(COLUMNS, row, strict=True)}
        fields["details"] = codec.unpack_dict(fields["details"])
        results.append(HealthResult(**fields))
    return results
