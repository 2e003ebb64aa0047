"""Spans: upsert by span id, trace lookup, and search newest first with keyset pagination.

A write replaces a stored span only when it is the same span written again (the same trace_id and start_ns,
as a running span and its completed version are); a different span whose span id collided with a stored one
is not stored (the first is kept) and is counted in a warning.

A trace is read through the trace_id index; searches walk (start_ns, span_id) descending, through the
(service, start_ns, span_id) index when a service is given. Attribute filters compare decoded values in
Python, exactly as the memory backend does, so a page is filled by reading candidates in order until it
has `limit` + 1 matches.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from tocsin.ext import Page, Span, SpanEvent, SpanLink, SpanQuery
from tocsin_sql import codec, ids, paging
from tocsin_sql.database import Database
from tocsin_sql.dialect import Dialect
from tocsin_sql.schema import spans

COLUMNS = tuple(column for column in spans.c if column.key != "id")
_FILTERS = ("service", "name", "status", "min_duration", "max_duration", "start", "end", "root_only", "cursor")
_CHUNK = 256
log = logging.getLogger("tocsin")


def encode(span: Span) -> tuple[Any, ...]:
    """A span as a row in COLUMNS order; bad ids or unstorable values are a StorageError."""
    return (
        ids.span_bytes(span.span_id, "Span span_id"),
        ids.trace_bytes(span.trace_id, "Span trace_id"),
        ids.optional_span_bytes(span.parent_span_id, "Span parent_span_id"),
        span.name,
        span.service,
        span.kind,
        span.start_ns,
        span.end_ns,
        span.status,
        span.status_message,
        codec.pack(span.attributes, "Span"),
        codec.pack(span.events, "Span"),
        codec.pack(span.links, "Span"),
    )


def decode(row: tuple[Any, ...]) -> Span:
    """A stored row (COLUMNS order) back as a Span."""
    return Span(
        span_id=row[0].hex(),
        trace_id=row[1].hex(),
        parent_span_id=ids.hex_or_none(row[2]),
        name=row[3],
        service=row[4],
        kind=row[5],
        start_ns=row[6],
        end_ns=row[7],
        status=row[8],
        status_message=row[9],
        attributes=codec.unpack_dict(row[10]),
        events=codec.unpack_as(row[11], list[SpanEvent], []),
        links=codec.unpack_as(row[12], list[SpanLink], []),
    )


def _upsert(d: Dialect) -> sa.ClauseElement:
    insert = d.insert(spans).values({column.key: sa.bindparam(column.key) for column in COLUMNS})
    replaced = {column.key: insert.excluded[column.key] for column in COLUMNS if column.key != "span_id"}
    same_span = sa.and_(spans.c.trace_id == insert.excluded.trace_id, spans.c.start_ns == insert.excluded.start_ns)
    return insert.on_conflict_do_update(index_elements=[spans.c.span_id], set_=replaced, where=same_span)


def write(db: Database, rows: list[tuple[Any, ...]]) -> None:
    """Store encoded spans (inside the caller's transaction); a stored span is replaced only by itself.

    A row whose span_id is stored with another trace_id or start_ns changes nothing (its id collided with
    another span's); such rows are counted and logged, and the rest of the batch is stored.
    """
    statement = db.sql(_upsert)
    collided = sum(1 for row in rows if not db.run(statement, row))
    if collided:
        log.warning("tocsin: %d span(s) not stored: their span_id belongs to another stored span", collided)


def _trace(_: Dialect) -> sa.Select:
    return sa.select(*COLUMNS).where(spans.c.trace_id == sa.bindparam("trace_id")).order_by(
        spans.c.start_ns, spans.c.span_id
    )


def get_trace(db: Database, trace_id: str) -> list[Span]:
    """Every span of one trace ordered by start time (then span id); empty when unknown."""
    if not ids.is_trace_id(trace_id):
        return []
    rows = db.fetch(db.sql(_trace), {"trace_id": bytes.fromhex(trace_id)})
    return [decode(row) for row in rows]


def _where(shape: tuple[bool, ...]) -> list[sa.ColumnElement]:
    s = spans.c
    present = dict(zip(_FILTERS, shape, strict=True))
    duration = s.end_ns - s.start_ns
    clauses = {
        "service": s.service == sa.bindparam("service"),
        "name": s.name == sa.bindparam("name"),
        "status": s.status == sa.bindparam("status"),
        "min_duration": sa.and_(s.end_ns.is_not(None), duration >= sa.bindparam("min_duration")),
        "max_duration": sa.and_(s.end_ns.is_not(None), duration <= sa.bindparam("max_duration")),
        "start": s.start_ns >= sa.bindparam("start"),
        "end": s.start_ns < sa.bindparam("end"),
        "root_only": s.parent_id.is_(None),
        "cursor": paging.before(s.start_ns, s.span_id),
    }
    return [clause for name, clause in clauses.items() if present[name]]


def _search(_: Dialect, shape: tuple[bool, ...]) -> sa.Select:
    return (
        sa.select(*COLUMNS)
        .where(*_where(shape))
        .order_by(spans.c.start_ns.desc(), spans.c.span_id.desc())
        .limit(sa.bindparam("limit"))
    )


def _count(_: Dialect, shape: tuple[bool, ...]) -> sa.Select:
    return sa.select(sa.func.count()).select_from(spans).where(*_where(shape))


def search(db: Database, query: SpanQuery) -> Page[Span]:
    """Spans whose start is in [start_ns, end_ns) and that pass every filter, newest start first."""
    paging.check_limit(query.limit)
    params: dict[str, Any] = {
        "service": query.service,
        "name": query.name,
        "status": query.status,
        "min_duration": query.min_duration_ns,
        "max_duration": query.max_duration_ns,
        "start": query.start_ns,
        "end": query.end_ns,
        "root_only": query.root_only or None,
    }
    key = paging.cursor_key(query.cursor, tuple[int, str])
    if key:
        key["after_1"] = ids.span_bytes(key["after_1"], "cursor span id") if ids.is_span_id(key["after_1"]) else b""
    shape = tuple(params[name] is not None for name in _FILTERS[:-1])
    total = None if query.attributes else db.fetch(db.sql(_count, (*shape, False)), params)[0][0]
    found: list[Span] = []
    while len(found) <= query.limit:
        statement = db.sql(_search, (*shape, bool(key)))
        rows = db.fetch(statement, {**params, **key, "limit": _CHUNK if query.attributes else query.limit + 1})
        for row in rows:
            span = decode(row)
            if all(name in span.attributes and span.attributes[name] == value
                   for name, value in query.attributes.items()):
                found.append(span)
        if not query.attributes or len(rows) < _CHUNK:
            break
        key = {"after_0": rows[-1][6], "after_1": rows[-1][0]}
    return paging.page(found, query.limit, lambda span: (span.start_ns, span.span_id), total)


def _count_by(_: Dialect, field: str, of_service: bool) -> sa.Select:
    column = spans.c[field]
    where = [spans.c.start_ns >= sa.bindparam("start"), spans.c.start_ns < sa.bindparam("end")]
    if of_service:
        where.append(spans.c.service == sa.bindparam("service"))
    return sa.select(column, sa.func.count()).where(*where).group_by(column)


def count_by(db: Database, field: str, start_ns: int, end_ns: int, service: str | None) -> dict[str, int]:
    """Spans starting in [start_ns, end_ns) (of `service`, when given) per value of `field` (checked by the
    caller), counted by the database over the (start_ns) or (service, start_ns) index: no span is decoded."""
    statement = db.sql(_count_by, field, service is not None)
    return dict(db.fetch(statement, {"start": start_ns, "end": end_ns, "service": service}))
