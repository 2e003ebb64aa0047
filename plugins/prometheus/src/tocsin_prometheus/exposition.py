"""The exposition itself: `exposition(monitor)` in process, and `scrape(monitor, ...)` for the `/metrics` route.

    from tocsin_prometheus import exposition
    body = exposition(monitor)                     # text 0.0.4, as bytes
    body = exposition(monitor, openmetrics=True)   # OpenMetrics 1.0.0, ending in "# EOF"

Storage size needs a storage read, so the synchronous `exposition` includes it only when handed the
`StorageStats`; the route reads them (at most every `storage_stats_every`) and passes them in.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from tocsin.ext import StorageStats
from tocsin_prometheus.families import instrument_families, live_families, without_clashes
from tocsin_prometheus.text import render

if TYPE_CHECKING:
    from tocsin import Monitor


def exposition(monitor: Monitor, openmetrics: bool = False, stats: StorageStats | None = None) -> bytes:
    """tocsin's metrics now, in text format 0.0.4 (default) or OpenMetrics 1.0.0: the monitor's instruments at
    their values since the process started, plus buffer fill, leadership and, given `stats`, storage size."""
    families = without_clashes([*instrument_families(monitor), *live_families(monitor, stats)])
    return render(families, openmetrics=openmetrics)


class StatsCache:
    """`storage.stats()` read at most every `every_s` seconds (row counts can be slow on a large store)."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._read_at = -float("inf")
        self._stats: StorageStats | None = None

    async def get(self, monitor: Monitor) -> StorageStats | None:
        """The cached stats, refreshed when older than `every_s`; None while the monitor has no storage."""
        storage = monitor.storage
        if storage is None:
            return None
        now = time.monotonic()
        if self._stats is None or now - self._read_at >= self.every_s:
            self._stats, self._read_at = await storage.stats(), now
        return self._stats
