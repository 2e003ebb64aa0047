"""`PostgresStorage`, the class tocsin registers as storage backend `postgres`, kept light to import.

Registering a backend imports its module every time a plugin manager loads entry points (every CLI command,
every `Monitor`), and the implementation pulls in SQLAlchemy and psycopg. So this class holds only the
`Config`; creating a store builds the real implementation, `tocsin_postgres.backend.PostgresBackend` (a
subclass), importing it then.
"""

from __future__ import annotations

from typing import Any

from tocsin_postgres.config import PostgresConfig


class PostgresStorage:
    """Every signal in one PostgreSQL schema; `PostgresStorage(config)` is a PostgresBackend."""

    Config = PostgresConfig

    def __new__(cls, config: PostgresConfig | None = None) -> Any:
        if cls is PostgresStorage:
            from tocsin_postgres.backend import PostgresBackend

            return PostgresBackend(config)
        return super().__new__(cls)
