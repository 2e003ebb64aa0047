"""Log search over FTS5: newest first by time-key id, time ranges as id ranges, totals only while cheap.

The text of a query is parsed by `tocsin.logquery` (the one language every backend speaks) and reaches
MATCH only as `ParsedQuery.to_fts5()`, every token quoted, restricted to the message column. Levels go
into MATCH too (`level : ("3" OR "4")`), so the index answers "warning or worse"; the other field filters
(service, logger, trace, span, execution, step) are WHERE clauses on the joined row.

Because ids are time keys (`tocsin_sql.logkeys`), `ORDER BY rowid DESC LIMIT n` streams the newest matches
and stops after n, and [start_ns, end_ns) becomes an id range before FTS5 runs (PERFORMANCE.md section 4:
190 ms -> 1.7 ms at a million rows). Only ids in the range's edge buckets need their time checked.

`Page.total` is exact up to TOTAL_LIMIT matches and None beyond (or when counting would cost more than
COUNT_BUDGET steps): counting every match of a common word at a million rows costs ~10 ms, ten times the
page itself.
"""

from __future__ import annotations

import sqlite3
from typing import Any, NamedTuple

from tocsin_sql import ids, logkeys
from tocsin_sql import logs as log_rows
from tocsin_sql.paging import check_limit, cursor_key, page

from tocsin.errors import QueryError
from tocsin.logquery import ParsedQuery, parse
from tocsin.models import LOG_LEVELS, LogHit
from tocsin.storage import LogQuery, Page
from tocsin_sqlite.connection import SQLiteDatabase
from tocsin_sqlite.dialect import FTS_TABLE

TOTAL_LIMIT = 1000
"""A search counts at most this many matches; past it `Page.total` is None ("more than 1000")."""
COUNT_BUDGET = 200
"""Progress-handler steps (1000 SQLite instructions each) a count may take before it gives up (total None)."""
SNIPPET_CHARS = 200

_ROW = ", ".join(f"l.{column.key}" for column in log_rows.COLUMNS)
_SNIPPET = (
    f"CASE WHEN length(l.message) <= {SNIPPET_CHARS} THEN highlight({FTS_TABLE}, 0, '[', ']') "
    f"ELSE snippet({FTS_TABLE}, 0, '[', ']', '…', 32) END"
)
_NULLABLE = ("trace_id", "span_id", "execution_id", "step")
_FIELDS = ("service", "logger", "trace_id", "span_id", "execution_id", "step")
_INDEXED = ("trace_id", "execution_id")
"""Fields with an index on logs: a search filtering on one reads that index first, then checks MATCH per row."""


class _Filter(NamedTuple):
    """One WHERE clause on the joined log row, its parameters, and whether an index can drive it."""

    sql: str
    args: tuple[Any, ...]
    indexed: bool = False


class Plan(NamedTuple):
    """A log search reduced to what the SQL needs; `empty` when no record can match."""

    match: str | None
    has_text: bool
    filters: tuple[_Filter, ...]
    start_ns: int | None
    end_ns: int | None
    before_id: int | None
    limit: int
    empty: bool


def _value(name: str, value: str) -> Any:
    """A filter value as stored: ids as bytes (None when it cannot be an id, so nothing matches)."""
    if name == "trace_id":
        return bytes.fromhex(value) if ids.is_trace_id(value) else None
    if name == "span_id":
        return bytes.fromhex(value) if ids.is_span_id(value) else None
    return value


def _field_filters(query: LogQuery, parsed: ParsedQuery | None) -> tuple[list[_Filter], bool]:
    """WHERE clauses for every field filter; the flag is True when some filter can match nothing."""
    filters: list[_Filter] = []
    impossible = False
    wanted = dict(parsed.fields) if parsed else {}
    excluded = parsed.excluded if parsed else {}
    for name in _FIELDS:
        given = getattr(query, name, None)
        accepted = [given] if given is not None else []
        for values in ([accepted] if accepted else []) + ([wanted[name]] if name in wanted else []):
            stored = [v for v in (_value(name, value) for value in values) if v is not None]
            if not stored:
                impossible = True
                continue
            marks = ", ".join("?" * len(stored))
            filters.append(_Filter(f"l.{name} IN ({marks})", tuple(stored), name in _INDEXED))
        if name in excluded:
            stored = [v for v in (_value(name, value) for value in excluded[name]) if v is not None]
            if stored:
                marks = ", ".join("?" * len(stored))
                nullable = f"l.{name} IS NULL OR " if name in _NULLABLE else ""
                filters.append(_Filter(f"({nullable}l.{name} NOT IN ({marks}))", tuple(stored)))
    return filters, impossible


def _levels(query: LogQuery, parsed: ParsedQuery | None) -> set[int]:
    allowed = set(range(len(LOG_LEVELS)))
    if query.level is not None:
        if query.level not in LOG_LEVELS:
            raise QueryError(f"log level {query.level!r} is unknown; use one of {', '.join(LOG_LEVELS)}")
        allowed = {code for code in allowed if code >= LOG_LEVELS.index(query.level)}
    if parsed is not None:
        if "level" in parsed.fields:
            allowed &= {LOG_LEVELS.index(level) for level in parsed.fields["level"]}
        allowed -= {LOG_LEVELS.index(level) for level in parsed.excluded.get("level", ())}
    return allowed


def plan(query: LogQuery) -> Plan:
    """Check and reduce a LogQuery (in the caller's thread); QueryError for anything malformed."""
    check_limit(query.limit)
    parsed = parse(query.text) if query.text.strip() else None
    before = cursor_key(query.cursor, tuple[int]).get("after_0")
    levels = _levels(query, parsed)
    filters, impossible = _field_filters(query, parsed)
    clauses = []
    text = parsed.to_fts5() if parsed is not None else None
    if text is not None:
        clauses.append(f"message : ({text})")
    if len(levels) < len(LOG_LEVELS):
        clauses.append("level : (" + " OR ".join(f'"{code}"' for code in sorted(levels)) + ")")
    return Plan(
        match=" AND ".join(clauses) or None,
        has_text=text is not None,
        filters=tuple(filters),
        start_ns=query.start_ns,
        end_ns=query.end_ns,
        before_id=before,
        limit=query.limit,
        empty=impossible or not levels,
    )


class _Sql:
    """Assembles one statement: WHERE clauses with their arguments in order."""

    def __init__(self) -> None:
        self.where: list[str] = []
        self.args: list[Any] = []

    def add(self, clause: str, *args: Any) -> None:
        self.where.append(clause)
        self.args.extend(args)

    def clause(self) -> str:
        return " AND ".join(self.where) if self.where else "1"


def _bounds(sql: _Sql, id_column: str, lo: int | None, hi: int | None) -> None:
    if lo is not None:
        sql.add(f"{id_column} >= ?", lo)
    if hi is not None:
        sql.add(f"{id_column} < ?", hi)


def _time(sql: _Sql, search: Plan) -> None:
    if search.start_ns is not None:
        sql.add("l.time_ns >= ?", search.start_ns)
    if search.end_ns is not None:
        sql.add("l.time_ns < ?", search.end_ns)


def _source(sql: _Sql, search: Plan, lo: int | None, hi: int | None, joined: bool = True) -> tuple[str, str]:
    """The FROM clause and the id column to order by: the FTS index first, unless an indexed filter is
    more selective (then the filter's index first, MATCH checked per row); `logs` alone without text."""
    if search.match is None:
        _bounds(sql, "l.id", lo, hi)
        return "logs AS l", "l.id"
    sql.add(f"{FTS_TABLE} MATCH ?", search.match)
    if any(item.indexed for item in search.filters):
        _bounds(sql, "l.id", lo, hi)
        return f"logs AS l CROSS JOIN {FTS_TABLE} ON {FTS_TABLE}.rowid = l.id", "l.id"
    _bounds(sql, f"{FTS_TABLE}.rowid", lo, hi)
    if not joined:
        return FTS_TABLE, f"{FTS_TABLE}.rowid"
    return f"{FTS_TABLE} CROSS JOIN logs AS l ON l.id = {FTS_TABLE}.rowid", f"{FTS_TABLE}.rowid"


def _page_rows(db: SQLiteDatabase, search: Plan, span: logkeys.IdRange) -> list[tuple[Any, ...]]:
    sql = _Sql()
    hi = span.hi
    if search.before_id is not None:
        hi = search.before_id if hi is None else min(hi, search.before_id)
    source, order = _source(sql, search, span.lo, hi)
    _time(sql, search)
    for item in search.filters:
        sql.add(item.sql, *item.args)
    snippet = _SNIPPET if search.has_text else "NULL"
    statement = f"SELECT {_ROW}, {snippet} FROM {source} WHERE {sql.clause()} ORDER BY {order} DESC LIMIT ?"
    return db.fetch(statement, (*sql.args, search.limit + 1))


def _count_in(db: SQLiteDatabase, search: Plan, lo: int | None, hi: int | None, timed: bool) -> int:
    """Matches with ids in [lo, hi), at most TOTAL_LIMIT + 1; `timed` checks each row's time too."""
    sql = _Sql()
    source, _ = _source(sql, search, lo, hi, joined=timed or bool(search.filters))
    if timed:
        _time(sql, search)
    for item in search.filters:
        sql.add(item.sql, *item.args)
    statement = f"SELECT count(*) FROM (SELECT 1 FROM {source} WHERE {sql.clause()} LIMIT ?)"
    return db.fetch(statement, (*sql.args, TOTAL_LIMIT + 1))[0][0]


def _count(db: SQLiteDatabase, search: Plan, span: logkeys.IdRange) -> int | None:
    """Every match of the search (cursor aside), or None past TOTAL_LIMIT or COUNT_BUDGET."""
    timed = search.start_ns is not None or search.end_ns is not None
    if not timed:
        regions = [(span.lo, span.hi, False)]
    else:
        inner_lo = span.inner_lo if span.lo is None or span.inner_lo is None else max(span.lo, span.inner_lo)
        inner_hi = span.inner_hi
        if inner_lo is not None and inner_hi is not None and inner_lo >= inner_hi:
            regions = [(span.lo, span.hi, True)]
        else:
            regions = [(inner_lo, inner_hi, False)]
            if inner_lo is not None:
                regions.append((span.lo, inner_lo, True))
            if inner_hi is not None:
                regions.append((inner_hi, span.hi, True))
    total = 0
    try:
        with db.guard.limited(COUNT_BUDGET):
            for lo, hi, timed_region in regions:
                total += _count_in(db, search, lo, hi, timed_region)
                if total > TOTAL_LIMIT:
                    return None
    except sqlite3.OperationalError:
        if db.guard.exhausted:
            return None
        raise
    return total


def run(db: SQLiteDatabase, search: Plan) -> Page[LogHit]:
    """Run a planned search in a read transaction (on a reader thread)."""
    if search.empty:
        return Page(items=[], next_cursor=None, total=0)
    span = logkeys.id_range(search.start_ns, search.end_ns, log_rows.spill(db))
    try:
        rows = _page_rows(db, search, span)
        if search.before_id is None and len(rows) <= search.limit:
            total: int | None = len(rows)
        else:
            total = _count(db, search, span)
    except sqlite3.OperationalError as error:
        if db.guard.expired:
            raise
        message = str(error)
        if message.startswith("fts5") or "syntax error" in message or "no such column" in message:
            raise QueryError(f"log search could not run: {message}") from None
        raise
    hits = [LogHit(record=log_rows.decode(row), snippet=row[-1] if search.has_text else row[9]) for row in rows]
    return page(hits, search.limit, lambda hit: (hit.record.id,), total)
