"""Log search over FTS5: newest first by time-key id, time ranges as id ranges, totals only while cheap.

The text of a query is parsed by `tocsin.storage.logquery` (the one language every backend speaks) and reaches
MATCH only as `ParsedQuery.to_fts5()`, every token quoted, restricted to the message column. The index also
holds each row's level as tokens (`tocsin_sqlite.dialect.LEVEL_TOKENS`), so "warning or worse" is answered
inside MATCH (`level : "g2"`, one token; any other set of levels is the OR of their `l<code>`), for counts
and pages alike: FTS5 intersects the two doclists, which at a million rows beats fetching each matching row to
check its level (a common word with "critical" only: 3.5 ms -> 0.6 ms; a word with a few matches pays
~0.15 ms more). The other field filters (service, logger, trace, span, execution, step) are WHERE
clauses on the joined row.

A prefix (`conn*`) is expanded into the OR of the indexed terms that start with it (`tocsin_sqlite.vocabulary`),
which streams like a plain word, instead of FTS5's prefix query, which merges every matching doclist first.

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

import msgspec
from tocsin_sql import ids, logkeys
from tocsin_sql import logs as log_rows
from tocsin_sql.paging import cursor_key, page

from tocsin.ext import (
    LOG_LEVELS,
    AllOf,
    AnyOf,
    LogHit,
    LogQuery,
    Node,
    Not,
    Page,
    ParsedQuery,
    QueryError,
    Term,
    check_query_values,
    parse_log_query,
)
from tocsin_sqlite.connection import SQLiteDatabase
from tocsin_sqlite.dialect import FTS_TABLE
from tocsin_sqlite.vocabulary import terms_with_prefix

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
    """A log search reduced to what the SQL needs; `empty` when no record can match.

    `text` is the text part of the query (its prefixes are expanded by `run`, which has the index);
    `levels` the accepted level codes, or None for every level.
    """

    text: ParsedQuery | None
    levels: tuple[int, ...] | None
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
    """Check and reduce a LogQuery (in the caller's thread); QueryError for anything malformed or out of range."""
    check_query_values(query)
    parsed = parse_log_query(query.text) if query.text.strip() else None
    before = cursor_key(query.cursor, tuple[int]).get("after_0")
    levels = _levels(query, parsed)
    filters, impossible = _field_filters(query, parsed)
    return Plan(
        text=parsed if parsed is not None and parsed.has_text else None,
        levels=None if len(levels) == len(LOG_LEVELS) else tuple(sorted(levels)),
        filters=tuple(filters),
        start_ns=query.start_ns,
        end_ns=query.end_ns,
        before_id=before,
        limit=query.limit,
        empty=impossible or not levels,
    )


def _expand(db: SQLiteDatabase, node: Node) -> Node:
    """The expression with every prefix term replaced by the OR of the indexed terms it stands for."""
    if isinstance(node, Term):
        if not node.prefix:
            return node
        terms = terms_with_prefix(db, FTS_TABLE, node.tokens[-1])
        if not terms:  # unreadable, too many, or none at all: FTS5's own prefix query is right (and cheap if none)
            return node
        head = node.tokens[:-1]
        expanded = [Term(tokens=(*head, term)) for term in terms]
        return expanded[0] if len(expanded) == 1 else AnyOf(items=tuple(expanded))
    if isinstance(node, AllOf | AnyOf):
        return type(node)(items=tuple(_expand(db, item) for item in node.items))
    return Not(item=_expand(db, node.item))


def _match(db: SQLiteDatabase, search: Plan) -> str | None:
    """The MATCH expression: text in the message column and levels in the level column, so the index alone
    decides which rows a page or a count reads (None: no text and every level)."""
    text = None
    if search.text is not None:
        expr = _expand(db, search.text.expr) if "*" in search.text.source else search.text.expr
        text = f"message : ({msgspec.structs.replace(search.text, expr=expr).to_fts5()})"
    if search.levels is None:
        return text
    first = search.levels[0]
    if search.levels == tuple(range(first, len(LOG_LEVELS))):  # this level or worse: one token
        levels = f'level : "g{first}"'
    else:
        levels = "level : (" + " OR ".join(f'"l{code}"' for code in search.levels) + ")"
    return levels if text is None else f"{text} AND {levels}"


class _Sql:
    """Assembles one statement: WHERE clauses with their arguments in order."""

    def __init__(self) -> None:
        self.where: list[str] = []
        self.args: list[Any] = []

    def add(self, clause: str, *args: Any) -> None:
        """One more condition, AND-ed with the others."""
        self.where.append(clause)
        self.args.extend(args)

    def clause(self) -> str:
        """The WHERE clause text ("1" when there is no condition)."""
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


def _source(
    sql: _Sql, match: str | None, filters: tuple[_Filter, ...], lo: int | None, hi: int | None, joined: bool = True
) -> tuple[str, str]:
    """The FROM clause and the id column to order by: the FTS index first, unless an indexed filter is
    more selective (then the filter's index first, MATCH checked per row); `logs` alone without MATCH."""
    if match is None:
        _bounds(sql, "l.id", lo, hi)
        return "logs AS l", "l.id"
    sql.add(f"{FTS_TABLE} MATCH ?", match)
    if any(item.indexed for item in filters):
        _bounds(sql, "l.id", lo, hi)
        return f"logs AS l CROSS JOIN {FTS_TABLE} ON {FTS_TABLE}.rowid = l.id", "l.id"
    _bounds(sql, f"{FTS_TABLE}.rowid", lo, hi)
    if not joined:
        return FTS_TABLE, f"{FTS_TABLE}.rowid"
    return f"{FTS_TABLE} CROSS JOIN logs AS l ON l.id = {FTS_TABLE}.rowid", f"{FTS_TABLE}.rowid"


def _page_rows(
    db: SQLiteDatabase, search: Plan, match: str | None, span: logkeys.IdRange
) -> list[tuple[Any, ...]]:
    sql = _Sql()
    hi = span.hi
    if search.before_id is not None:
        hi = search.before_id if hi is None else min(hi, search.before_id)
    source, order = _source(sql, match, search.filters, span.lo, hi)
    _time(sql, search)
    for item in search.filters:
        sql.add(item.sql, *item.args)
    snippet = _SNIPPET if search.text is not None else "NULL"
    statement = f"SELECT {_ROW}, {snippet} FROM {source} WHERE {sql.clause()} ORDER BY {order} DESC LIMIT ?"
    return db.fetch(statement, (*sql.args, search.limit + 1))


def _count_in(
    db: SQLiteDatabase, match: str | None, filters: tuple[_Filter, ...], lo: int | None, hi: int | None,
    timed: Plan | None, extra: int = 0,
) -> int:
    """Matches with ids in [lo, hi), at most TOTAL_LIMIT + 1 + extra; with `timed`, rows' times are checked."""
    sql = _Sql()
    joined = timed is not None or bool(filters)
    source, _ = _source(sql, match, filters, lo, hi, joined=joined)
    if timed is not None:
        _time(sql, timed)
    for item in filters:
        sql.add(item.sql, *item.args)
    statement = f"SELECT count(*) FROM (SELECT 1 FROM {source} WHERE {sql.clause()} LIMIT ?)"
    return db.fetch(statement, (*sql.args, TOTAL_LIMIT + 1 + extra))[0][0]


def _outsiders(db: SQLiteDatabase, search: Plan, span: logkeys.IdRange) -> list[int]:
    """Ids inside the range's edge buckets whose time falls outside [start_ns, end_ns) (usually none)."""
    edges = []
    if span.lo is not None and span.inner_lo is not None:
        edges.append((span.lo, span.inner_lo))
    if span.hi is not None and span.inner_hi is not None:
        edges.append((max(span.inner_hi, span.lo if span.lo is not None else span.inner_hi), span.hi))
    outside = []
    for lo, hi in edges:
        sql = _Sql()
        _bounds(sql, "l.id", lo, hi)
        time_ok = _Sql()
        _time(time_ok, search)
        statement = f"SELECT l.id FROM logs AS l WHERE {sql.clause()} AND NOT ({time_ok.clause()})"
        outside += [row[0] for row in db.fetch(statement, (*sql.args, *time_ok.args))]
    return sorted(set(outside))


def _count(db: SQLiteDatabase, search: Plan, match: str | None, span: logkeys.IdRange) -> int | None:
    """Every match of the search (cursor aside), or None past TOTAL_LIMIT or COUNT_BUDGET.

    A count with MATCH and no other filter runs on the index alone over the whole id range, then takes away
    the matches among the few rows of the edge buckets that lie outside the time range; any other count
    checks each row's time as it goes.
    """
    timed = search.start_ns is not None or search.end_ns is not None
    try:
        with db.guard.limited(COUNT_BUDGET):
            if not timed or match is None or search.filters:
                total = _count_in(db, match, search.filters, span.lo, span.hi, search if timed else None)
            else:
                outside = _outsiders(db, search, span)
                total = _count_in(db, match, search.filters, span.lo, span.hi, None, extra=len(outside))
                if outside:
                    marks = ", ".join("?" * len(outside))
                    statement = f"SELECT count(*) FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH ? AND rowid IN ({marks})"
                    total -= db.fetch(statement, (match, *outside))[0][0]
    except sqlite3.OperationalError:
        if db.guard.exhausted:
            return None
        raise
    return None if total > TOTAL_LIMIT else total


def run(db: SQLiteDatabase, search: Plan) -> Page[LogHit]:
    """Run a planned search in a read transaction (on a reader thread)."""
    if search.empty:
        return Page(items=[], next_cursor=None, total=0)
    span = logkeys.id_range(search.start_ns, search.end_ns, log_rows.spill(db))
    try:
        match = _match(db, search)
        rows = _page_rows(db, search, match, span)
        if search.before_id is None and len(rows) <= search.limit:
            total: int | None = len(rows)
        else:
            total = _count(db, search, match, span)
    except sqlite3.OperationalError as error:
        if db.guard.expired:
            raise
        message = str(error)
        if message.startswith("fts5") or "syntax error" in message or "no such column" in message:
            raise QueryError(f"log search could not run: {message}") from None
        raise
    text = search.text is not None
    hits = [LogHit(record=log_rows.decode(row), snippet=row[-1] if text else row[9]) for row in rows]
    return page(hits, search.limit, lambda hit: (hit.record.id,), total)
