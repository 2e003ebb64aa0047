"""Housekeeping after a retention sweep on a real file: freed pages really go back to the file system."""

from __future__ import annotations

import random
import sqlite3

from sqlite_test_helpers import SECOND, T0, config, log
from tocsin_sqlite import SQLiteStorage

from tocsin.models import LogRecord, MetricRollup, Span
from tocsin.storage.protocol import RETENTION_SIGNALS, LogQuery, Retention

DAY = 86_400
ROWS = 10_000  # of each signal: with these messages and attributes the file is some 4700 pages
WORDS = ("connection", "refused", "timeout", "retry", "upstream", "payload", "worker", "queue", "disk", "cache")


def _logs(rng: random.Random, first: int, count: int, at_ms: float) -> list[LogRecord]:
    return [
        log(" ".join(rng.choices(WORDS, k=12)) + f" request {n} " + rng.randbytes(200).hex(),
            at_ms, service="api", attributes={"n": n})
        for n in range(first, first + count)
    ]


def _spans(first: int, count: int, start_ns: int) -> list[Span]:
    return [
        Span(trace_id=f"{n:032x}", span_id=f"{n:016x}", name=f"GET /items/{n}", service="api", start_ns=start_ns,
             end_ns=start_ns + 1000, attributes={"http.url": f"https://example.test/items/{n}?q=" + "z" * 300})
        for n in range(first, first + count)
    ]


def _rollups(first: int, count: int, start_ns: int) -> list[MetricRollup]:
    return [
        MetricRollup(name="queue_depth", kind="gauge", labels={"queue": f"q{n}", "host": "h" * 20},
                     start_ns=start_ns + n, interval_s=10.0, count=1, sum=1.0, min=1.0, max=1.0, last=float(n))
        for n in range(first, first + count)
    ]


def _pages(path, check: bool = False) -> tuple[int, int]:
    """(free pages, pages) of the file, read by a connection of its own."""
    connection = sqlite3.connect(path)
    try:
        free, pages = (connection.execute(f"PRAGMA {name}").fetchone()[0] for name in ("freelist_count", "page_count"))
        if check:
            assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        connection.close()
    return free, pages


async def test_a_sweep_of_nine_tenths_leaves_at_most_a_tenth_of_the_file_free(tmp_path):
    path = tmp_path / "t.db"
    storage = SQLiteStorage(config(path))
    rng = random.Random(12)
    old, new = T0, T0 + 10 * DAY * SECOND
    kept = ROWS // 10
    await storage.open()
    try:
        for first in range(0, ROWS, 1000):
            at = new if first >= ROWS - kept else old
            await storage.write_logs(_logs(rng, first, 1000, (at - T0) / 1e6))
            await storage.write_spans(_spans(first, 1000, at))
            await storage.write_metrics(_rollups(first, 1000, at))
        written = _pages(path)[1]
        keep_all = dict.fromkeys(RETENTION_SIGNALS, None)
        deleted = await storage.sweep(Retention(**{**keep_all, "logs": DAY, "traces": DAY, "metrics": DAY}),
                                      new + SECOND)
        assert (deleted["logs"], deleted["traces"], deleted["metrics"]) == (ROWS - kept,) * 3
        assert (await storage.search_logs(LogQuery(limit=1))).total == kept
    finally:
        await storage.close()
    free, pages = _pages(path, check=True)
    assert written > 4000, written
    assert pages < written / 2, (written, pages)  # the freed pages went back to the file system ...
    assert free <= 0.10 * pages, (free, pages)  # ... down to a tenth of what is left (docs/storage.md)
