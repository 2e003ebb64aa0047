"""tocsin-postgres: storage backend `postgres`, tocsin on PostgreSQL for several replicas behind a load balancer."""

from __future__ import annotations

from tocsin import hookimpl
from tocsin.ext import LazyCommand
from tocsin_postgres.storage import PostgresStorage

__all__ = ["PostgresStorage", "register_commands", "register_storage_backends"]


@hookimpl
def register_storage_backends(register):
    """Provide the `postgres` storage backend."""
    register("postgres", PostgresStorage)


@hookimpl
def register_commands(cli):
    """Provide `tocsin storage copy` (from one backend to another), imported only when it runs."""
    cli.add_command(LazyCommand("storage", "tocsin_postgres.copy_command:storage",
                                "Work on a config's storage as a whole."))
