"""SQLiteStorage against the storage contract every backend passes unchanged."""

from __future__ import annotations

import pytest
from tocsin_sqlite import SQLiteStorage

from tocsin.testing.contracts import StorageBackendContract


class TestSQLiteContract(StorageBackendContract):
    """Every contract test, on a fresh database file."""

    @pytest.fixture
    async def backend(self, tmp_path):
        storage = SQLiteStorage(SQLiteStorage.Config(path=str(tmp_path / "t.db")))
        await storage.open()
        yield storage
        await storage.close()
