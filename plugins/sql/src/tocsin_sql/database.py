"""The seam between tocsin-sql's queries and a backend's driver: compiled statements and a sync executor.

Queries are written once with SQLAlchemy Core and compiled once per dialect into plain SQL with positional
parameters (`StatementCache`), so the hot paths run at raw driver speed: no ORM, no per-call compilation.
A backend subclasses `Database` with three driver calls; every operation in tocsin-sql is a plain function
of a `Database`, run on whatever thread owns the connection.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa

if TYPE_CHECKING:
    from tocsin_sql.dialect import Dialect

Params = Mapping[str, Any] | Sequence[Any]


class Compiled(NamedTuple):
    """A statement as SQL text for one dialect, with the names of its positional parameters in order."""

    sql: str
    names: tuple[str, ...]
    defaults: tuple[Any, ...]

    def args(self, params: Params) -> Sequence[Any]:
        """Positional arguments from a name -> value mapping (a sequence is taken as already positional)."""
        if not isinstance(params, Mapping):
            return params
        return tuple(params.get(name, default) for name, default in zip(self.names, self.defaults, strict=True))


Builder = Callable[..., sa.ClauseElement]
"""A function `build(dialect, *shape)` returning a Core statement."""


class StatementCache:
    """Core statements compiled once per dialect, keyed by the function that builds them and its arguments."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._compiled: dict[tuple[Any, ...], Compiled] = {}

    def get(self, build: Builder, *shape: Hashable) -> Compiled:
        """The compiled form of `build(dialect, *shape)`; `shape` holds whatever changes the SQL text."""
        key = (build, *shape)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = self.compile(build(self.dialect, *shape))
        return compiled

    def compile(self, statement: sa.ClauseElement) -> Compiled:
        """Compile one statement (DML or DDL) for this dialect."""
        result = statement.compile(dialect=self.dialect.sqlalchemy)
        names = tuple(getattr(result, "positiontup", None) or ())
        values = result.construct_params(_check=False) if names else {}
        defaults = tuple(values.get(name) for name in names)
        return Compiled(str(result), names, defaults)


def one_of(column: sa.ColumnElement, values: Sequence[Any]) -> sa.ColumnElement:
    """`column IN (fixed values)` with one plain parameter per value (no per-call expansion)."""
    return column.in_([sa.literal(value) for value in values])


class Database(ABC):
    """One connection's worth of sync query execution, plus the dialect and statement cache it uses."""

    def __init__(self, statements: StatementCache) -> None:
        self.statements = statements
        self.dialect = statements.dialect

    def sql(self, build: Builder, *shape: Hashable) -> Compiled:
        """The compiled statement `build(dialect, *shape)` (see StatementCache.get)."""
        return self.statements.get(build, *shape)

    def fetch(self, statement: Compiled | str, params: Params = ()) -> list[tuple[Any, ...]]:
        """Every row of a query."""
        if isinstance(statement, str):
            return self.fetchall(statement, params)  # type: ignore[arg-type]
        return self.fetchall(statement.sql, statement.args(params))

    def fetch_one(self, statement: Compiled | str, params: Params = ()) -> tuple[Any, ...] | None:
        """The first row of a query, or None."""
        rows = self.fetch(statement, params)
        return rows[0] if rows else None

    def run(self, statement: Compiled | str, params: Params = ()) -> int:
        """Execute one statement; the number of rows it changed."""
        if isinstance(statement, str):
            return self.execute(statement, params)  # type: ignore[arg-type]
        return self.execute(statement.sql, statement.args(params))

    def run_many(self, statement: Compiled | str, rows: Sequence[Params]) -> None:
        """Execute one statement once per row of parameters (all positional sequences, or all mappings)."""
        if isinstance(statement, str) or not rows or not isinstance(rows[0], Mapping):
            self.executemany(statement if isinstance(statement, str) else statement.sql, rows)  # type: ignore[arg-type]
        else:
            self.executemany(statement.sql, [statement.args(row) for row in rows])

    # -- what a driver provides ---------------------------------------------------------------------------
    @abstractmethod
    def fetchall(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run a query with positional arguments and return all rows as tuples."""

    @abstractmethod
    def execute(self, sql: str, args: Sequence[Any]) -> int:
        """Run a statement with positional arguments; the changed row count."""

    @abstractmethod
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run a statement once per row of positional arguments."""
