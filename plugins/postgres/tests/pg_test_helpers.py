"""Helpers shared by the postgres backend's tests: the test server, a schema per test, configs.

Tests run against the PostgreSQL at `TOCSIN_TEST_PG_DSN` (default: 127.0.0.1:5432, database `test`, user
`postgres`, trust auth). Each test gets its own schema, dropped afterwards. Without a server the tests are
skipped, unless `TOCSIN_REQUIRE_SERVICES=1` (as in CI), where a missing server fails them.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from tocsin_postgres import PostgresStorage

from tocsin.ext import Secret

DSN = os.environ.get("TOCSIN_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def require_server() -> None:
    """Skip (or, with TOCSIN_REQUIRE_SERVICES=1, fail) when the test server cannot be reached."""
    try:
        psycopg.connect(DSN, connect_timeout=3).close()
    except psycopg.Error as error:
        message = f"PostgreSQL at {DSN} is not reachable: {error}"
        if os.environ.get("TOCSIN_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)


def drop_schema(name: str) -> None:
    """Drop a test schema and everything in it."""
    with psycopg.connect(DSN, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def empty_tables(schema: str) -> None:
    """Empty every tocsin table of a schema but its version record (quicker than creating them again)."""
    with psycopg.connect(DSN, autocommit=True) as connection:
        tables = [name for (name,) in connection.execute(
            "SELECT c.relname FROM pg_class c WHERE c.relnamespace = %s::regnamespace AND c.relkind IN ('r', 'p') "
            "AND NOT c.relispartition AND c.relname <> 'schema_version'", (schema,))]
        with connection.transaction():  # DELETE: a test leaves a few rows, and TRUNCATE costs file operations
            for table in tables:
                connection.execute(f'DELETE FROM "{schema}"."{table}"')


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A new schema name (created by whoever opens it first), dropped on the way out."""
    require_server()
    name = f"t_{secrets.token_hex(6)}"
    try:
        yield name
    finally:
        drop_schema(name)


def config(schema: str, **options: Any) -> PostgresStorage.Config:
    """A Config for the test server in `schema`."""
    options.setdefault("pool_min", 1)
    options.setdefault("pool_max", 4)
    return PostgresStorage.Config(dsn=Secret(DSN), schema=schema, **options)
