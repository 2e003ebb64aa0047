"""The storage contract: one test class every storage backend must pass unchanged.

A backend's test module subclasses `StorageBackendContract` and supplies an async `backend` fixture that
yields an opened backend with nothing in it:

    class TestSQLiteStorage(StorageBackendContract):
        @pytest.fixture
        async def backend(self, tmp_path):
            storage = SQLiteStorage(SQLiteStorage.Config(path=tmp_path / "t.db"))
            await storage.open()
            yield storage
            await storage.close()

The tests use only the `StorageBackend` protocol (no peeking at internals), fixed nanosecond timestamps
(no sleeping), and log text queries made of plain words and one quoted phrase.

The tests live in one mixin per area (`metrics`, `rollups` (stored rollups read back), `traces`, `logs`,
`alerts`, `outbox`, `groups` (notification grouping state), `health`, `workflows`, `housekeeping`, `leases`,
`feed`), each built on `base.ContractBase` and the record factories in `records`. The mixins are not named
`Test*`, so pytest collects them only through a backend's subclass of `StorageBackendContract`.
"""

from __future__ import annotations

from tocsin.testing.contracts.alerts import AlertsContract
from tocsin.testing.contracts.feed import FeedContract
from tocsin.testing.contracts.groups import GroupsContract
from tocsin.testing.contracts.health import HealthContract
from tocsin.testing.contracts.housekeeping import HousekeepingContract
from tocsin.testing.contracts.leases import LeasesContract
from tocsin.testing.contracts.logs import LogsContract
from tocsin.testing.contracts.metrics import MetricsContract
from tocsin.testing.contracts.outbox import OutboxContract
from tocsin.testing.contracts.rollups import RollupReadsContract
from tocsin.testing.contracts.traces import TracesContract
from tocsin.testing.contracts.workflows import WorkflowsContract

__all__ = ["StorageBackendContract"]


# pytest collects the tests of base classes last base first, so listing the areas in reverse runs them
# metrics first, then housekeeping, leases, and the change feed last.
class StorageBackendContract(
    FeedContract,
    LeasesContract,
    HousekeepingContract,
    WorkflowsContract,
    HealthContract,
    GroupsContract,
    OutboxContract,
    AlertsContract,
    LogsContract,
    TracesContract,
    RollupReadsContract,
    MetricsContract,
):
    """Subclass it in a backend's tests with an async `backend` fixture yielding an opened, empty backend."""
