"""PostgreSQL's side of the tocsin-sql seam: upserts, LEAST/GREATEST, COPY for logs, a tsvector column.

Full-text search keeps a `tsv tsvector` column on `logs` with a GIN index over it, filled by the writer in
the same COPY as the row (`tocsin_postgres.fulltext` builds it with FTS5's tokenizer, so both backends find
the same records), its pending list kept short (GIN_PENDING_KB). Deleting a row deletes its index entries,
so `unindex_logs` has nothing to do. A partial index holds the ids of warning-or-worse records (a fifth of
them, typically): "warning or worse", the level filter searches use most, walks it newest first instead of
the primary key (1 ms -> 0.2 ms for a page, and 10 ms -> 3 ms to count 1001 matches of a common word in an
hour, at a million rows). The writer also stores a batch's warning-or-worse rows together (first, each group
in id order), so that walk reads a few heap pages per batch instead of nearly every page: 4x fewer, which is
what decides its speed once the logs outgrow shared_buffers. New partitions get planner statistics from the
writer (`tocsin_postgres.statistics`).

Sketches are merged in Python, not in SQL: PostgreSQL has no Python functions without the PL/Python
extension (rarely installed, never on managed services), and re-implementing the sketch in PL/pgSQL would be
a second implementation to keep equal. So `merge_sketches` simply takes the new sketch, and the writer
(`tocsin_postgres.sketches`) hands the upsert a new sketch already merged with the stored one, read in the
same transaction under the metrics lock. Merging costs a fetch of the batch's stored sketches, once per
flush, which is where it is cheapest: a SQL aggregate over sketch buckets would need the sketches kept as
relational rows, tens per rollup.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import psycopg as pg_psycopg
from tocsin_sql.database import Compiled, Database
from tocsin_sql.dialect import Dialect
from tocsin_sql.logs import COLUMNS

from tocsin.ext import LOG_LEVELS
from tocsin_postgres.database import PostgresDatabase
from tocsin_postgres.fulltext import tsvector
from tocsin_postgres.partitions import TSV_STATISTICS, make_partitioned
from tocsin_postgres.statistics import YoungPartitions

TSV = "tsv"
"""The tsvector column of `logs`."""
LOG_COLUMNS = (*(column.key for column in COLUMNS), TSV)
WARNING = LOG_LEVELS.index("warning")
GIN_PENDING_KB = 1024
"""The GIN index's pending list (new entries not yet merged into the index): every search that reads the index
scans it whole, so it is kept at 1 MB instead of the server's 4 MB default (a rare word in the newest partition:
1.7 ms -> 0.9 ms). Merging costs about the same per entry down to 1 MB (COPY of 1000 log rows: 23.3 ms on average
with 4 MB, 23.9 with 1 MB), but 26.9 ms with 256 kB, merged at every batch; turning the list off (fastupdate)
would halve ingest."""
_SEARCH_INDEXES = (
    f"CREATE INDEX ix_logs_{TSV} ON logs USING gin ({TSV}) WITH (gin_pending_list_limit = {GIN_PENDING_KB})",
    f"CREATE INDEX ix_logs_warning ON logs (id) WHERE level >= {WARNING}",
)
_EXTRAS = (f"ALTER TABLE logs ADD COLUMN {TSV} tsvector NOT NULL DEFAULT ''::tsvector", *_SEARCH_INDEXES)


def _below_warning(row: Sequence[Any]) -> bool:
    """Whether a stored row (level third) is below warning: the sort key that groups a batch's rows by it."""
    return row[2] < WARNING


class PostgresDialect(Dialect):
    """PostgreSQL 13+ through psycopg 3 (positional `%s` parameters), logs in partitions `width_s` seconds wide."""

    name = "postgres"

    def __init__(self, width_s: int) -> None:
        self._sqlalchemy = pg_psycopg.dialect(paramstyle="format")
        self.young = YoungPartitions(width_s)

    @property
    def sqlalchemy(self) -> sa.engine.Dialect:
        """SQLAlchemy's psycopg dialect with positional parameters, as StatementCache needs."""
        return self._sqlalchemy

    def insert(self, table: sa.Table) -> Any:
        """PostgreSQL's INSERT with ON CONFLICT support."""
        return postgresql.insert(table)

    def least(self, a: Any, b: Any) -> sa.ColumnElement:
        """LEAST(a, b)."""
        return sa.func.least(a, b)

    def greatest(self, a: Any, b: Any) -> sa.ColumnElement:
        """GREATEST(a, b)."""
        return sa.func.greatest(a, b)

    def merge_sketches(self, stored: Any, new: Any) -> sa.ColumnElement:
        """The new sketch: the writer already merged the stored one into it (see the module docstring)."""
        return new

    def insert_logs(self, db: Database, insert: Compiled, rows: Sequence[Sequence[Any]]) -> None:
        """COPY the rows, warning-or-worse ones first, with their tsvectors (built from the message, the row's
        tenth column, as COPY streams), then give the partitions they filled statistics if they are young and
        have none for their size (`YoungPartitions`)."""
        assert isinstance(db, PostgresDatabase)
        grouped = sorted(rows, key=_below_warning)  # stable: warning-or-worse rows first, each group in id order
        db.copy_rows("logs", LOG_COLUMNS, ((*row, tsvector(row[9])) for row in grouped))
        self.young.analyze(db, [row[0] for row in rows])

    def unindex_logs(self, db: Database, rows: Sequence[Sequence[Any]]) -> None:
        """Nothing: deleting a row removes its index entries."""

    def table_names(self, db: Database) -> set[str]:
        """Tables of the current schema (the first of search_path), partitions left out."""
        rows = db.fetch(
            "SELECT c.relname FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace "
            "AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
        )
        return {name for (name,) in rows}

    def create_extras(self, db: Database) -> None:
        """Time partitions for logs and metric rollups, the tsvector column of logs and its GIN index."""
        assert isinstance(db, PostgresDatabase)
        make_partitioned(db)
        for statement in _EXTRAS:
            db.run(statement)
        db.run(TSV_STATISTICS.format(table="logs"))

    def reindex_logs(self, db: Database) -> None:
        """Schema version 5 on a store made before it: the GIN index built anew with its pending-list limit (a
        partitioned index takes no ALTER … SET) and the index of warning-or-worse ids added. Both read every log
        partition once, while writers wait: the upgrade takes longer the more logs a store holds."""
        db.run(f"DROP INDEX ix_logs_{TSV}")
        for statement in _SEARCH_INDEXES:
            db.run(statement)
