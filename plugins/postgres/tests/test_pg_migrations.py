"""Opening a schema: created once when replicas start together, refused when newer or foreign."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from pg_test_helpers import DSN, config, fresh_schema
from tocsin_postgres import PostgresStorage
from tocsin_sql.schema import SCHEMA_VERSION

from tocsin.ext import SchemaVersionError, StorageError


async def test_replicas_starting_together_create_the_schema_once():
    with fresh_schema() as schema:
        backends = [PostgresStorage(config(schema)) for _ in range(4)]
        await asyncio.gather(*(backend.open() for backend in backends))
        try:
            found = sorted(backend.schema_found is None for backend in backends)
            assert found == [False, False, False, True]  # one created it, three found it at the current version
            with psycopg.connect(DSN) as connection:
                rows = connection.execute(f'SELECT version FROM "{schema}".schema_version').fetchall()
            assert rows == [(SCHEMA_VERSION,)]
            await backends[0].write_logs([])
            assert (await backends[3].stats()).rows["logs"] == 0
        finally:
            await asyncio.gather(*(backend.close() for backend in backends))


async def test_a_newer_schema_is_refused_and_left_alone():
    with fresh_schema() as schema:
        backend = PostgresStorage(config(schema))
        await backend.open()
        await backend.close()
        with psycopg.connect(DSN, autocommit=True) as connection:
            connection.execute(f'INSERT INTO "{schema}".schema_version VALUES (%s, 0, %s)', (SCHEMA_VERSION + 1, "x"))
        with pytest.raises(SchemaVersionError, match=f"schema version {SCHEMA_VERSION + 1}"):
            await PostgresStorage(config(schema)).open()


async def test_a_schema_tocsin_did_not_create_is_refused():
    with fresh_schema() as schema:
        with psycopg.connect(DSN, autocommit=True) as connection:
            connection.execute(f'CREATE SCHEMA "{schema}"')
            connection.execute(f'CREATE TABLE "{schema}".customers (id int)')
        with pytest.raises(StorageError, match="not a tocsin database"):
            await PostgresStorage(config(schema)).open()
