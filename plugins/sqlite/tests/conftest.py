"""Fixtures for the SQLite backend's tests."""

from __future__ import annotations

import pytest
from tocsin_sqlite import SQLiteStorage

from .helpers import config


@pytest.fixture
async def storage(tmp_path):
    """An opened, empty SQLiteStorage on a temporary file."""
    backend = SQLiteStorage(config(tmp_path / "t.db"))
    await backend.open()
    yield backend
    await backend.close()
