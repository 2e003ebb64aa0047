"""`SQLiteStorage`, the class tocsin registers as storage backend `sqlite`, kept light to import.

Registering a backend imports its module every time a plugin manager loads entry points (every CLI command,
every `Monitor`), and the implementation pulls in SQLAlchemy (about a second on a slow machine). So this
class holds only the `Config`; creating a store builds the real implementation, `tocsin_sqlite.backend`
`SQLiteBackend` (a subclass), importing it then.
"""

from __future__ import annotations

from typing import Any

from tocsin_sqlite.config import SQLiteConfig


class SQLiteStorage:
    """Every signal in one SQLite file (WAL, FTS5 log search); `SQLiteStorage(config)` is a SQLiteBackend."""

    Config = SQLiteConfig

    def __new__(cls, config: SQLiteConfig | None = None) -> Any:
        if cls is SQLiteStorage:
            from tocsin_sqlite.backend import SQLiteBackend

            return SQLiteBackend(config)
        return super().__new__(cls)
