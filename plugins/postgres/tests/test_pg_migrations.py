"""Opening a schema: created once when replicas start together, refused when newer or foreign."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from pg_test_helpers import DSN, config, fresh_schema
from tocsin_postgres import PostgresStorage
from tocsin_sql.schema import SCHEMA_VERSION

from tocsin.ext import LogQuery, LogRecord, SchemaVersionError, StorageError


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


async def test_a_version_4_schema_gets_the_search_indexes_of_version_5_and_keeps_its_logs():
    with fresh_schema() as schema:
        backend = PostgresStorage(config(schema))
        await backend.open()
        await backend.write_logs([LogRecord(time_ns=1_700_000_000_000_000_000 + n, level=level, message=f"disk {n}")
                                  for n, level in enumerate(["info", "error", "warning", "debug"])])
        await backend.close()
        with psycopg.connect(DSN, autocommit=True) as connection:  # back to what version 4 made
            connection.execute(f'DROP INDEX "{schema}".ix_logs_warning')
            connection.execute(f'DROP INDEX "{schema}".ix_logs_tsv')
            connection.execute(f'CREATE INDEX ix_logs_tsv ON "{schema}".logs USING gin (tsv)')
            connection.execute(f'UPDATE "{schema}".schema_version SET version = 4')
        upgraded = PostgresStorage(config(schema))
        await upgraded.open()
        try:
            assert upgraded.schema_found == 4
            page = await upgraded.search_logs(LogQuery(text="disk", level="warning"))
            assert sorted(hit.record.message for hit in page.items) == ["disk 1", "disk 2"]
        finally:
            await upgraded.close()
        with psycopg.connect(DSN) as connection:
            options = dict(connection.execute(
                "SELECT c.relname, c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname IN ('ix_logs_tsv', 'ix_logs_warning')", (schema,)).fetchall())
            versions = [row[0] for row in connection.execute(
                f'SELECT version FROM "{schema}".schema_version ORDER BY version').fetchall()]
        assert options == {"ix_logs_tsv": ["gin_pending_list_limit=1024"], "ix_logs_warning": None}
        assert versions == [4, 5]


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
