"""The postgres backend's settings (its keys in `[storage]`), importable without the backend itself."""

from __future__ import annotations

from typing import Annotated

import msgspec

from tocsin.ext import Duration, Secret


class PostgresConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`[storage]` keys of the postgres backend."""

    dsn: Secret = Secret("postgresql://postgres@127.0.0.1:5432/postgres")
    """Where the database is: a libpq URL or `key=value` string; a secret, so its password never prints."""
    schema: Annotated[str, msgspec.Meta(pattern=r"^[a-z_][a-z0-9_]{0,62}$")] = "tocsin"
    """The PostgreSQL schema tocsin's tables live in; created at first start if missing."""
    pool_min: Annotated[int, msgspec.Meta(ge=1, le=64)] = 2
    """Connections the pool keeps open."""
    pool_max: Annotated[int, msgspec.Meta(ge=1, le=256)] = 8
    """Most connections the pool opens (concurrent queries and writes)."""
    connect_timeout: Duration = Duration(5.0)
    """How long getting a connection may take (from the pool, or a new one) before a write fails as unavailable."""
    query_timeout: Duration = Duration(5.0)
    """A read running longer is stopped with a QueryError (statement_timeout)."""
    lock_timeout: Duration = Duration(10.0)
    """How long a write waits for a lock held by another writer before it fails as unavailable."""
    partition: Duration = Duration(86400.0)
    """Time one partition of logs and of metric rollups covers (at least 1h); retention drops whole partitions."""
