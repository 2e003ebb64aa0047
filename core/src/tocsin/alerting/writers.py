"""Whether other processes record metrics into this store, which the leader's streaming rings cannot see.

Streaming evaluation answers metric rules from the rollups this process flushed. When several processes
record into one store (web workers sharing a SQLite file, replicas taking OTLP), the leader's rings hold only
its own share and would answer with part of the data. So every process that is not the leader keeps the lease
`WRITERS_LEASE` alive while it writes metrics, and the leader answers from storage while anyone holds it. The
lease is a flag, not a lock: which writer holds it does not matter, only that one does.
"""

from __future__ import annotations

from collections.abc import Sized

from tocsin.storage.lease import holder_id
from tocsin.storage.protocol import StorageBackend

WRITERS_LEASE = "metric-writers"
"""The lease a process that is not the leader holds while it writes metrics."""


class SharedWriters:
    """The writers' flag of one monitor: `announce` after writing metrics, `others` before a cycle."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        """How long one announcement counts: the leader answers from storage this long after the last write."""
        self._holder = holder_id()
        self._next_ns = 0

    async def announce(self, storage: StorageBackend, written: Sized, *, leader: bool, now_ns: int) -> None:
        """Say that this process, not the leader, wrote metrics (renewed every third of the lease at most)."""
        if leader or not written or now_ns < self._next_ns or not hasattr(storage, "acquire_lease"):
            return
        try:
            if await storage.acquire_lease(WRITERS_LEASE, self._holder, self.ttl_s, now_ns):
                self._next_ns = now_ns + round(self.ttl_s / 3 * 1e9)
        except Exception:  # the metrics are written; the flag is tried again at the next write
            return

    async def others(self, storage: StorageBackend, now_ns: int) -> bool:
        """Whether another process wrote metrics within the lease (when the store cannot say: yes, so storage
        answers); a store without leases has no others."""
        if not hasattr(storage, "acquire_lease"):
            return False
        try:
            if await storage.acquire_lease(WRITERS_LEASE, self._holder, self.ttl_s, now_ns):
                await storage.release_lease(WRITERS_LEASE, self._holder)
                return False
        except Exception:  # the store cannot say: storage answers this cycle
            pass
        return True
