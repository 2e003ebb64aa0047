"""The terms of the FTS5 index that start with a prefix, read from the index's own pages.

SQLite 3.40's FTS5 answers `"conn" *` by merging the whole doclist of every term that starts with "conn"
before it returns the first row: ~12 ms at a million rows for a common prefix, whatever the LIMIT. The OR of
those terms, each quoted, streams newest first like a single word (~0.2 ms). The terms themselves are cheap
to list from the index's leaf pages, whose layout `fts5_index.c` documents (format version 4):

* the structure record (`%_data` row 10): a 4-byte cookie, then varints: levels, segments, write counter,
  and per level: merge inputs, segment count, and (segment id, first page, last page) per segment;
* `%_idx(segid, term, pgno)`: for each leaf page holding a term, a key no greater than its first term
  (`pgno` is shifted left one bit);
* a leaf page (`%_data` row `segid << 37 | page`): a 2-byte offset of its first rowid, a 2-byte offset of its
  footer; the footer lists (delta-encoded varints) the offset of each term on the page; the page's first term
  is stored whole (length varint, bytes), each later one as (bytes kept from the previous term, length, bytes).

Main-index terms carry a leading "0" byte. Anything unexpected (another format version, a page that does not
parse) makes `terms_with_prefix` return None, and the search falls back to FTS5's own prefix query.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import NamedTuple

from tocsin_sqlite.connection import SQLiteDatabase

FORMAT_VERSION = 4
STRUCTURE_ROWID = 10
MAIN_INDEX = b"0"
MAX_EXPANSION = 32
"""A prefix matching more terms than this is left to FTS5 (an OR of many terms is no faster)."""
MIN_PAGES = 2000
"""Below this many leaf pages (about 8 MB of index, 100k log rows) FTS5's own prefix query is as fast."""


class _Unreadable(Exception):
    """The index is not laid out as this module expects."""


class _Segment(NamedTuple):
    segid: int
    first: int
    last: int


def _varint(data: bytes, position: int) -> tuple[int, int]:
    """An SQLite varint at `position`: (value, position after it)."""
    value = 0
    for i in range(9):
        if position >= len(data):
            raise _Unreadable("varint runs past the end of its record")
        byte = data[position]
        position += 1
        if i == 8:
            return (value << 8) | byte, position
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, position
    raise AssertionError("unreachable")


def _segments(structure: bytes) -> list[_Segment]:
    levels, position = _varint(structure, 4)
    total, position = _varint(structure, position)
    _, position = _varint(structure, position)  # the write counter
    segments = []
    for _ in range(levels):
        _, position = _varint(structure, position)  # inputs of an ongoing merge
        count, position = _varint(structure, position)
        for _ in range(count):
            segid, position = _varint(structure, position)
            first, position = _varint(structure, position)
            last, position = _varint(structure, position)
            segments.append(_Segment(segid, first, last))
    if len(segments) != total:
        raise _Unreadable("segment count does not add up")
    return segments


def _page_terms(page: bytes) -> Iterator[bytes]:
    """Every term that starts on a leaf page, in order, parsed as they are asked for (a search stops at the
    first term past its prefix). Most varints here are one byte and read inline; a read past the page's end
    is an IndexError, which `terms_with_prefix` takes as an unreadable page."""
    if len(page) < 4:
        raise _Unreadable("leaf page shorter than its header")
    footer = int.from_bytes(page[2:4], "big")
    end = len(page)
    position, offset, term, first = footer, 0, b"", True
    while position < end:
        delta = page[position]
        if delta < 0x80:
            position += 1
        else:
            delta, position = _varint(page, position)
        offset += delta
        at, kept = offset, 0
        if not first:  # a later term: bytes kept from the one before, then its own
            kept = page[at]
            if kept < 0x80:
                at += 1
            else:
                kept, at = _varint(page, at)
        first = False
        size = page[at]
        if size < 0x80:
            at += 1
        else:
            size, at = _varint(page, at)
        if at + size > footer or kept > len(term):
            raise _Unreadable("term runs past the page")
        term = term[:kept] + page[at : at + size]
        yield term


class _Reader:
    """Reads one FTS5 table's pages through a connection (inside the caller's read transaction)."""

    def __init__(self, db: SQLiteDatabase, table: str) -> None:
        self.db = db
        self.data = f"{table}_data"
        self.idx = f"{table}_idx"

    def block(self, rowid: int) -> bytes | None:
        """One record of `%_data`."""
        row = self.db.connection.execute(f"SELECT block FROM {self.data} WHERE id = ?", (rowid,)).fetchone()
        return None if row is None else row[0]

    def page_at_or_before(self, segid: int, term: bytes) -> int | None:
        """The leaf page of a segment where `term` would be."""
        row = self.db.connection.execute(
            f"SELECT pgno FROM {self.idx} WHERE segid = ? AND term <= ? ORDER BY term DESC LIMIT 1", (segid, term)
        ).fetchone()
        return None if row is None else row[0] >> 1

    def page_after(self, segid: int, term: bytes) -> int | None:
        """The next leaf page of a segment on which a term greater than `term` starts."""
        row = self.db.connection.execute(
            f"SELECT pgno FROM {self.idx} WHERE segid = ? AND term > ? ORDER BY term LIMIT 1", (segid, term)
        ).fetchone()
        return None if row is None else row[0] >> 1

    def segment_terms(self, segment: _Segment, prefix: bytes, limit: int) -> set[bytes]:
        """Terms of one segment that start with `prefix` (at most limit + 1 of them)."""
        found: set[bytes] = set()
        page = max(segment.first, self.page_at_or_before(segment.segid, prefix) or segment.first)
        while page is not None and page <= segment.last:
            block = self.block((segment.segid << 37) + page)
            if block is None:
                raise _Unreadable(f"segment {segment.segid} has no page {page}")
            last = None
            for last in _page_terms(block):
                if last.startswith(prefix):
                    found.add(last)
                    if len(found) > limit:
                        return found
                elif last > prefix:
                    return found
            page = self.page_after(segment.segid, last) if last is not None else page + 1
        return found


def terms_with_prefix(
    db: SQLiteDatabase, table: str, prefix: str, limit: int = MAX_EXPANSION, min_pages: int | None = None
) -> list[str] | None:
    """The distinct indexed terms starting with `prefix`, sorted; None when there are more than `limit`, when
    the index is smaller than `min_pages`, or when it cannot be read this way (then FTS5's own prefix query is
    the answer)."""
    connection = db.connection
    try:
        row = connection.execute(f"SELECT v FROM {table}_config WHERE k = 'version'").fetchone()
        if row is None or row[0] != FORMAT_VERSION:
            return None
        reader = _Reader(db, table)
        structure = reader.block(STRUCTURE_ROWID)
        if structure is None:
            return []
        segments = _segments(structure)
        pages = sum(segment.last - segment.first + 1 for segment in segments)
        if pages < (MIN_PAGES if min_pages is None else min_pages):
            return None
        wanted = MAIN_INDEX + prefix.encode()
        found: set[bytes] = set()
        for segment in segments:
            found |= reader.segment_terms(segment, wanted, limit)
            if len(found) > limit:
                return None
        return sorted(term[1:].decode() for term in found)
    except (_Unreadable, UnicodeDecodeError, IndexError):
        return None
    except sqlite3.OperationalError:
        if db.guard.expired or db.guard.exhausted:
            raise
        return None
