"""Fixtures for the postgres backend's tests; puts this directory on sys.path for `pg_test_helpers`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from tocsin_postgres import PostgresStorage

sys.path.insert(0, str(Path(__file__).parent))

from pg_test_helpers import config, fresh_schema


@pytest.fixture
def schema():
    """A schema of its own for one test, dropped afterwards."""
    with fresh_schema() as name:
        yield name


@pytest.fixture
async def storage(schema):
    """An opened, empty PostgresStorage in the test's schema."""
    backend = PostgresStorage(config(schema))
    await backend.open()
    yield backend
    await backend.close()
