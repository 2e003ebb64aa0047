"""PostgresStorage against the storage contract every backend passes unchanged."""

from __future__ import annotations

import pytest

from tocsin.testing.contracts import StorageBackendContract


class TestPostgresContract(StorageBackendContract):
    """Every contract test, in a fresh schema."""

    @pytest.fixture
    async def backend(self, storage):
        return storage
