"""Fixtures for the postgres backend's tests; puts this directory on sys.path for `pg_test_helpers`.

A test run creates one schema of its own (`t_<random>`), dropped at the end; each test starts with its
tables emptied (TRUNCATE, far quicker than creating the tables again). Tests of creating and upgrading
a schema take a brand-new one from `pg_test_helpers.fresh_schema`.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from tocsin_postgres import PostgresStorage

sys.path.insert(0, str(Path(__file__).parent))

from pg_test_helpers import config, empty_tables, fresh_schema


@pytest.fixture(scope="session")
def run_schema():
    """The test run's schema, with tocsin's tables created once."""
    with fresh_schema() as name:
        async def create() -> None:
            backend = PostgresStorage(config(name))
            await backend.open()
            await backend.close()

        asyncio.run(create())
        yield name


@pytest.fixture
def schema(run_schema):
    """The run's schema with every table emptied, for one test."""
    empty_tables(run_schema)
    return run_schema


@pytest.fixture
async def storage(schema):
    """An opened, empty PostgresStorage in the run's schema."""
    backend = PostgresStorage(config(schema))
    await backend.open()
    yield backend
    await backend.close()
