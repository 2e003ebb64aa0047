"""The small seam a SQL backend fills in: its SQLAlchemy dialect, upserts, a few functions and extra DDL.

Everything else in tocsin-sql (schema, migrations, every query but full-text search) is written once
against this class. SQLite and PostgreSQL both speak `INSERT ... ON CONFLICT DO UPDATE`, so `insert()`
only has to return the right SQLAlchemy construct; `least`/`greatest` differ (SQLite's two-argument
`min`/`max` versus `LEAST`/`GREATEST`); merging two stored sketches is a database function the backend
provides (`merge_sketches`), so a rollup upsert stays one statement.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec
import sqlalchemy as sa

from tocsin.ext import LogSketch, Sketch

if TYPE_CHECKING:
    from tocsin_sql.database import Compiled, Database

SKETCH_MERGE_FUNCTION = "tocsin_sketch_merge"
"""The name of the SQL function `merge_sketches` calls: (stored sketch, new sketch) -> merged sketch."""

_SKETCH = msgspec.msgpack.Decoder(Sketch)
_PACK = msgspec.msgpack.Encoder()


def encode_sketch(sketch: Sketch | LogSketch | None) -> bytes | None:
    """A sketch in its stored form (msgpack of `tocsin.models.Sketch`)."""
    if sketch is None:
        return None
    return _PACK.encode(sketch.to_model() if isinstance(sketch, LogSketch) else sketch)


def decode_sketch(blob: bytes | None) -> Sketch | None:
    """A stored sketch back."""
    return None if blob is None else _SKETCH.decode(blob)


def merge_sketch_blobs(stored: bytes | None, new: bytes | None) -> bytes | None:
    """The body of the sketch-merge SQL function; ValueError when the two layouts (gamma) differ."""
    if stored is None or new is None:
        return new if stored is None else stored
    merged = LogSketch.from_model(_SKETCH.decode(stored))
    merged.merge(_SKETCH.decode(new))
    return _PACK.encode(merged.to_model())


class Dialect(ABC):
    """What differs between SQL databases, kept to what tocsin-sql's shared queries need."""

    name: str
    """Short name used in messages, e.g. "sqlite"."""

    @property
    @abstractmethod
    def sqlalchemy(self) -> sa.engine.Dialect:
        """The SQLAlchemy dialect statements are compiled for."""

    @abstractmethod
    def insert(self, table: sa.Table) -> Any:
        """An INSERT construct that supports `.on_conflict_do_update()` / `.on_conflict_do_nothing()`."""

    @abstractmethod
    def least(self, a: Any, b: Any) -> sa.ColumnElement:
        """The smaller of two scalar expressions."""

    @abstractmethod
    def greatest(self, a: Any, b: Any) -> sa.ColumnElement:
        """The larger of two scalar expressions."""

    def merge_sketches(self, stored: Any, new: Any) -> sa.ColumnElement:
        """The SQL expression merging a stored sketch BLOB with a new one (see SKETCH_MERGE_FUNCTION)."""
        return getattr(sa.func, SKETCH_MERGE_FUNCTION)(stored, new)

    @abstractmethod
    def insert_logs(self, db: Database, insert: Compiled, rows: Sequence[Sequence[Any]]) -> None:
        """Insert log rows (`tocsin_sql.logs.COLUMNS` order, ids assigned; `insert` is the plain INSERT) and
        add them to the full-text index, each dialect in its fastest way (FTS5 from the inserted rows, COPY)."""

    @abstractmethod
    def unindex_logs(self, db: Database, rows: Sequence[Sequence[Any]]) -> None:
        """Remove log rows from the full-text index before they are deleted (same row shape)."""

    @abstractmethod
    def table_names(self, db: Database) -> set[str]:
        """The names of the tables in the database (to tell a new database from an existing one)."""

    @abstractmethod
    def create_extras(self, db: Database) -> None:
        """Create what the Core metadata cannot express (full-text index on logs, ...) on a new database."""

    def reindex_logs(self, db: Database) -> None:  # noqa: B027 - optional: most dialects have nothing to do
        """Bring a store made before schema version 5 to its log search indexes (SQLite: level tokens; PostgreSQL:
        the warning-or-worse index); a dialect whose indexes did not change keeps this, which does nothing."""
