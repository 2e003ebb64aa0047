"""Log search over the tsvector column: newest first by time-key id, totals only while cheap.

The text of a query is parsed by `tocsin.storage.logquery` (the language every backend speaks) and reaches
PostgreSQL only as a tsquery literal built by `tocsin_postgres.fulltext` from the same tokens FTS5 would
use, so a query finds exactly the records it finds on SQLite. Levels and the field filters (service, logger,
trace, span, execution, step) are `= ANY(array)` conditions on the row; a time range is both an id range
(ids are time keys, `tocsin_sql.logkeys`, so the primary key narrows it) and a check of `time_ns`.

The planner picks between walking the primary key backwards (or, for "warning or worse", the partial index of
those rows' ids, `tocsin_postgres.dialect`), checking each row's tsvector, and stopping after `limit` matches
(a common word), or the GIN index (a rare word), then sorting the few matches. Snippets are marked as FTS5
marks them (`tocsin_postgres.snippets`).

`Page.total` is exact up to TOTAL_LIMIT matches and None beyond (or past COUNT_BUDGET_MS): the count stops
there.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from psycopg import errors as pg_errors
from tocsin_sql import ids, logkeys
from tocsin_sql import logs as log_rows
from tocsin_sql.paging import cursor_key, page

from tocsin.ext import (
    LOG_LEVELS,
    LogHit,
    LogQuery,
    Page,
    ParsedQuery,
    QueryError,
    check_query_values,
    parse_log_query,
)
from tocsin_postgres.database import PostgresDatabase
from tocsin_postgres.fulltext import tsquery
from tocsin_postgres.snippets import mark

TOTAL_LIMIT = 1000
"""A search counts at most this many matches; past it `Page.total` is None ("more than 1000")."""
ESTIMATE_LIMIT = 2 * TOTAL_LIMIT
"""Above this many estimated matches (the planner's, from the tsvector statistics) the total is None uncounted."""
COUNT_BUDGET_MS = 25
"""A count taking longer is stopped, and the total is None, as SQLite's count budget does (a safety net: at a
million rows counting 1001 matches of a common word takes ~5 ms)."""

_ROW = ", ".join(f"l.{column.key}" for column in log_rows.COLUMNS)
_FIELDS = ("service", "logger", "trace_id", "span_id", "execution_id", "step")


class Search(NamedTuple):
    """A log search as WHERE conditions with their arguments; `parsed` for snippets, `empty` if nothing matches."""

    where: tuple[str, ...]
    args: tuple[Any, ...]
    parsed: ParsedQuery | None
    before_id: int | None
    limit: int
    empty: bool


def _stored(name: str, values: list[str]) -> list[Any]:
    """Filter values as stored: ids as bytes (values that cannot be ids are left out: they match nothing)."""
    if name == "trace_id":
        return [bytes.fromhex(v) for v in values if ids.is_trace_id(v)]
    if name == "span_id":
        return [bytes.fromhex(v) for v in values if ids.is_span_id(v)]
    return list(values)


def _levels(query: LogQuery, parsed: ParsedQuery | None) -> list[int]:
    """The level codes a record may have: at least `query.level`, among the query's `level:` values, not excluded."""
    if query.level is not None and query.level not in LOG_LEVELS:
        raise QueryError(f"log level {query.level!r} is unknown; use one of {', '.join(LOG_LEVELS)}")
    lowest = 0 if query.level is None else LOG_LEVELS.index(query.level)
    fields = parsed.fields if parsed else {}
    excluded = parsed.excluded.get("level", ()) if parsed else ()
    return [code for code, level in enumerate(LOG_LEVELS) if code >= lowest
            and ("level" not in fields or level in fields["level"]) and level not in excluded]


def plan(query: LogQuery) -> Search:
    """Check and reduce a LogQuery (in the caller's thread); QueryError for anything malformed or out of range."""
    check_query_values(query)
    parsed = parse_log_query(query.text) if query.text.strip() else None
    where: list[str] = []
    args: list[Any] = []
    empty = False
    if parsed is not None and parsed.expr is not None:
        where.append("l.tsv @@ %s::tsquery")
        args.append(tsquery(parsed.expr))
    levels = _levels(query, parsed)
    if not levels:
        empty = True
    elif len(levels) < len(LOG_LEVELS):
        where.append("l.level = ANY(%s::smallint[])")
        args.append(levels)
    for name in _FIELDS:
        given = getattr(query, name, None)
        for values in ([given] if given is not None else None, parsed.fields.get(name) if parsed else None):
            if values is not None:
                stored = _stored(name, values)
                empty = empty or not stored
                where.append(f"l.{name} = ANY(%s)")
                args.append(stored)
        unwanted = _stored(name, parsed.excluded.get(name, [])) if parsed else []
        if unwanted:
            where.append(f"(l.{name} IS NULL OR NOT l.{name} = ANY(%s))")
            args.append(unwanted)
    span = logkeys.id_range(query.start_ns, query.end_ns, 0)
    if query.start_ns is not None:
        where += ["l.id >= %s", "l.time_ns >= %s"]
        args += [span.lo, query.start_ns]
    if query.end_ns is not None:
        where.append("l.time_ns < %s")
        args.append(query.end_ns)
    before = cursor_key(query.cursor, tuple[int]).get("after_0")
    return Search(tuple(where), tuple(args), parsed, before, query.limit, empty)


def _upper_id(db: PostgresDatabase, end_ns: int | None) -> int | None:
    """The largest id a record before `end_ns` can have (the store's spill widens it), for the key range."""
    if end_ns is None:
        return None
    return logkeys.id_range(None, end_ns, log_rows.spill(db)).hi


def _count(db: PostgresDatabase, condition: str, args: list[Any]) -> int | None:
    """Matches up to TOTAL_LIMIT (None past it, or past COUNT_BUDGET_MS), newest first: a rare word is counted
    through the GIN index; a search the planner expects to match over ESTIMATE_LIMIT rows is not counted at all
    (at a million rows, finding 1001 matches of a word in 17% of them reads ~6,000 rows: 5 ms for nothing)."""
    (plan,) = db.fetch_planned(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM logs l WHERE {condition}", args)[0]
    if plan[0]["Plan"]["Plan Rows"] > ESTIMATE_LIMIT:
        return None  # the planner's statistics say far more than TOTAL_LIMIT: counting would only confirm it
    statement = f"SELECT count(*) FROM (SELECT 1 FROM logs l WHERE {condition} ORDER BY l.id DESC LIMIT %s) s"
    try:
        with db.connection.transaction():
            db.fetch("SELECT set_config('statement_timeout', %s, true)", (str(COUNT_BUDGET_MS),))
            (count,) = db.fetch_planned(statement, (*args, TOTAL_LIMIT + 1))[0]
    except pg_errors.QueryCanceled:
        return None
    return None if count > TOTAL_LIMIT else count


def run(db: PostgresDatabase, search: Search, end_ns: int | None) -> Page[LogHit]:
    """Run a planned search: the page (one more than `limit`, to know if there is more), then the total."""
    if search.empty:
        return Page(items=[], next_cursor=None, total=0)
    where, args = list(search.where), list(search.args)
    upper = _upper_id(db, end_ns)
    if upper is not None:
        where.append("l.id < %s")
        args.append(upper)
    paged_where, paged_args = list(where), list(args)
    if search.before_id is not None:
        paged_where.append("l.id < %s")
        paged_args.append(search.before_id)
    condition = " AND ".join(paged_where) or "TRUE"
    rows = db.fetch_planned(f"SELECT {_ROW} FROM logs l WHERE {condition} ORDER BY l.id DESC LIMIT %s",
                            (*paged_args, search.limit + 1))
    if search.before_id is None and len(rows) <= search.limit:
        total: int | None = len(rows)
    else:
        total = _count(db, " AND ".join(where) or "TRUE", args)
    parsed = search.parsed
    hits = []
    for row in rows:
        record = log_rows.decode(row)
        snippet = record.message if parsed is None or parsed.expr is None else mark(record.message, parsed.expr)
        hits.append(LogHit(record=record, snippet=snippet))
    return page(hits, search.limit, lambda hit: (hit.record.id,), total)
