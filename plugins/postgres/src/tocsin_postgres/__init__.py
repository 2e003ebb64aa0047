"""tocsin-postgres: storage backend `postgres`, tocsin on PostgreSQL for several replicas behind a load balancer."""

from __future__ import annotations

from tocsin import hookimpl
from tocsin_postgres.storage import PostgresStorage

__all__ = ["PostgresStorage", "register_storage_backends"]


@hookimpl
def register_storage_backends(register):
    """Provide the `postgres` storage backend."""
    register("postgres", PostgresStorage)
