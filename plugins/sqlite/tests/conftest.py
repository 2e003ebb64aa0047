"""Fixtures for the SQLite backend's tests; puts this directory on sys.path for `sqlite_test_helpers`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from tocsin_sqlite import SQLiteStorage

sys.path.insert(0, str(Path(__file__).parent))

from sqlite_test_helpers import config


@pytest.fixture
async def storage(tmp_path):
    """An opened, empty SQLiteStorage on a temporary file."""
    backend = SQLiteStorage(config(tmp_path / "t.db"))
    await backend.open()
    yield backend
    await backend.close()
