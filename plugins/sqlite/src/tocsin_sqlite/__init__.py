"""tocsin-sqlite: tocsin's embedded default storage backend, one SQLite file with FTS5 log search."""

from __future__ import annotations

from tocsin import hookimpl
from tocsin_sqlite.storage import SQLiteStorage

__all__ = ["SQLiteStorage", "register_storage_backends"]


@hookimpl
def register_storage_backends(register):
    """Provide the `sqlite` storage backend."""
    register("sqlite", SQLiteStorage)
