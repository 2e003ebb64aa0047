"""SQLite's side of the tocsin-sql seam: upserts, min/max, and the FTS5 index over log messages.

The full-text index is an FTS5 external-content table over `logs` (the text is stored once, in `logs`, read
through the view `logs_fts_source` of exactly what is indexed),
filled explicitly per batch rather than by a trigger, which halves ingest cost (PERFORMANCE.md section 4),
and from the rows just inserted (`INSERT … SELECT`), one statement that runs without holding Python's GIL
where binding every message again would take it per row.
It indexes two columns: `message` with the unicode61 tokenizer that `tocsin.storage.tokens` reproduces, and
`level` as tokens (`LEVEL_TOKENS`): `l<code>` for the level itself and `g<t>` for every level t it is at or
above, so "warning or worse" is the one token `g2` (at 1M rows a term + warning-or-worse count took 0.43 ms
against 0.63 ms for the OR of three level digits, schema version 5) and a search's total is a count over the
index alone. `columnsize=0` drops per-row token counts, which only ranking would use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from tocsin_sql.database import Compiled, Database
from tocsin_sql.dialect import Dialect

from tocsin.ext import LOG_LEVELS

FTS_TABLE = "logs_fts"
FTS_SOURCE = "logs_fts_source"
LEVEL_TOKENS = tuple(f"l{code}" + "".join(f" g{t}" for t in range(1, code + 1)) for code in range(len(LOG_LEVELS)))
"""The index's `level` column for each level code: `l<code>`, then `g1` … `g<code>` ("this level or worse")."""
_LEVEL_SQL = "CASE level " + " ".join(f"WHEN {code} THEN '{words}'" for code, words in enumerate(LEVEL_TOKENS)) + " END"
SOURCE_DDL = f"CREATE VIEW {FTS_SOURCE} AS SELECT id, message, {_LEVEL_SQL} AS level FROM logs"
"""What the index holds, row by row: FTS5 reads it back for highlights and checks itself against it."""
FTS_DDL = (
    f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5(message, level, content='{FTS_SOURCE}', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 1', columnsize=0)"
)
_INDEX = f"INSERT INTO {FTS_TABLE}(rowid, message, level) VALUES (?, ?, ?)"
_INDEX_ABOVE = f"INSERT INTO {FTS_TABLE}(rowid, message, level) SELECT * FROM {FTS_SOURCE} WHERE id > ?"
_INDEX_ALL = f"INSERT INTO {FTS_TABLE}(rowid, message, level) SELECT * FROM {FTS_SOURCE}"
_TOP = "SELECT max(id) FROM logs"
_UNINDEX = f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, message, level) VALUES ('delete', ?, ?, ?)"


def _fts_rows(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, Any, Any]]:
    """(rowid, message, level tokens) of stored log rows (`tocsin_sql.logs.COLUMNS` order)."""
    return [(row[0], row[9], LEVEL_TOKENS[row[2]]) for row in rows]


class SQLiteDialect(Dialect):
    """SQLite 3.35+ with FTS5."""

    name = "sqlite"

    def __init__(self) -> None:
        self._sqlalchemy = sqlite.dialect()

    @property
    def sqlalchemy(self) -> sa.engine.Dialect:
        """SQLAlchemy's pysqlite dialect (qmark parameters)."""
        return self._sqlalchemy

    def insert(self, table: sa.Table) -> Any:
        """SQLite's INSERT with ON CONFLICT support."""
        return sqlite.insert(table)

    def least(self, a: Any, b: Any) -> sa.ColumnElement:
        """Two-argument min() is a scalar function in SQLite."""
        return sa.func.min(a, b)

    def greatest(self, a: Any, b: Any) -> sa.ColumnElement:
        """Two-argument max() is a scalar function in SQLite."""
        return sa.func.max(a, b)

    def insert_logs(self, db: Database, insert: Compiled, rows: Sequence[Sequence[Any]]) -> None:
        """Insert the rows and index them: every row past the table's largest id before the insert (all of an
        in-order batch) with one INSERT … SELECT, rows that landed below it (late ones) one by one."""
        (top,) = db.fetch_one(_TOP) or (None,)
        db.run_many(insert, rows)
        if top is None:
            db.run(_INDEX_ALL)
            return
        db.run(_INDEX_ABOVE, (top,))
        late = [row for row in rows if row[0] <= top]
        if late:
            db.run_many(_INDEX, _fts_rows(late))

    def unindex_logs(self, db: Database, rows: Sequence[Sequence[Any]]) -> None:
        """External-content FTS5 deletes need the indexed values back: the rows as stored."""
        db.run_many(_UNINDEX, _fts_rows(rows))

    def table_names(self, db: Database) -> set[str]:
        """Tables (FTS5 shadow and virtual tables included) from sqlite_master."""
        rows = db.fetch("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        return {name for (name,) in rows}

    def create_extras(self, db: Database) -> None:
        """The FTS5 index over logs (through the view of what it holds)."""
        db.run(SOURCE_DDL)
        db.run(FTS_DDL)

    def reindex_logs(self, db: Database) -> None:
        """The FTS5 index built anew from `logs`, with the level tokens of schema version 5 (a file of a million
        records took 7.8 s here), merged into one segment."""
        db.run(f"DROP TABLE {FTS_TABLE}")
        self.create_extras(db)
        db.run(_INDEX_ALL)
        db.run(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('optimize')")
