"""Ingest through `monitor.log` against a plain sqlite3 loader, growing both to a million records (issue 13).

tocsin: a sync app calls `monitor.log.info(message)` in a tight loop (`[logging] overflow = "block"`, so every
record is stored), and `monitor.flush()` at the end of each chunk; the time includes recording, draining,
encoding, ids and the SQLite writer (table, indexes, FTS5 over message and level).
Reference: plain sqlite3 into a table plus an FTS5 index on the message (contentless), WAL, synchronous=NORMAL,
`executemany` in 10,000-row batches, rows built outside the timing.

Both grow to ROWS records in CHUNK-record chunks, alternating (tocsin, reference, tocsin, ...), so the shared
machine's load falls on both alike; records/s are the medians of the chunks, and the ratio is tocsin ÷
reference (target >= 0.8). The messages are the SQLite benchmark's twelve templates (seeded).

Run: uv run pytest benchmarks/test_ingest_bench.py --benchmark-only -s   (TOCSIN_BENCH_ROWS=200000: smaller)
"""

from __future__ import annotations

import os
import random
import sqlite3
import statistics
import time

import pytest

from tocsin import Monitor

ROWS = int(os.environ.get("TOCSIN_BENCH_ROWS", "1000000"))
CHUNK = 100_000
BATCH = 10_000
TEMPLATES = [
    "GET /api/v1/users/{n} 200 in {ms} ms from {ip}",
    "connection refused to {ip}:{port} after {n3} retries",
    "cache miss for key user:{n}:profile took {ms} ms",
    "payment {hex} declined by provider code={n3} amount={ms}.{n3}",
    "timeout after {ms} ms waiting for upstream inventory-service {ip}",
    "slow query took {ms} ms: SELECT * FROM orders WHERE id = {n}",
]


def messages(count: int) -> list[str]:
    rng = random.Random(13)
    return [rng.choice(TEMPLATES).format(
        n=rng.randrange(10**6), n3=rng.randrange(100), ms=rng.randrange(2000), port=rng.randrange(1024, 65535),
        ip=f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}", hex=f"{rng.getrandbits(48):012x}",
    ) for _ in range(count)]


class Plain:
    """The reference loader: one table, a contentless FTS5 index on the message, 10k-row executemany batches."""

    def __init__(self, path: str) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None)
        self.connection.execute("PRAGMA journal_mode = WAL")
        self.connection.execute("PRAGMA synchronous = NORMAL")
        self.connection.execute("CREATE TABLE logs (id INTEGER PRIMARY KEY, time_ns INTEGER, level INTEGER, "
                                "service TEXT, logger TEXT, message TEXT, attributes BLOB)")
        self.connection.execute("CREATE VIRTUAL TABLE logs_fts USING fts5(message, content='')")
        self.next_id = 1

    def load(self, texts: list[str]) -> float:
        """Insert the messages in batches; seconds spent inserting (rows are built before the clock starts)."""
        spent = 0.0
        for first in range(0, len(texts), BATCH):
            rows = [(self.next_id + i, time.time_ns(), 1, "app", "app", text, None)
                    for i, text in enumerate(texts[first:first + BATCH])]
            self.next_id += len(rows)
            started = time.perf_counter()
            self.connection.execute("BEGIN")
            self.connection.executemany("INSERT INTO logs VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            self.connection.executemany("INSERT INTO logs_fts (rowid, message) VALUES (?, ?)",
                                        [(row[0], row[5]) for row in rows])
            self.connection.execute("COMMIT")
            spent += time.perf_counter() - started
        return spent


def test_ingest_through_monitor_log_against_a_plain_loader(benchmark, tmp_path):
    pytest.importorskip("tocsin_sqlite")
    texts = messages(CHUNK)
    monitor = Monitor.from_config({"storage": {"backend": "sqlite", "path": str(tmp_path / "tocsin.db")},
                                   "logging": {"overflow": "block"}})
    plain = Plain(str(tmp_path / "plain.db"))
    rates: dict[str, list[float]] = {"tocsin": [], "plain": []}
    with monitor:
        info = monitor.log.info
        for _ in range(ROWS // CHUNK):
            started = time.perf_counter()
            for text in texts:
                info(text)
            monitor.flush()
            rates["tocsin"].append(CHUNK / (time.perf_counter() - started))
            rates["plain"].append(CHUNK / plain.load(texts))
        stored = monitor.run_sync(monitor.storage.stats()).rows["logs"]
        dropped = monitor.log_buffer.dropped
    plain.connection.close()
    assert stored == ROWS // CHUNK * CHUNK and dropped == 0
    medians = {side: statistics.median(values) for side, values in rates.items()}
    ratio = medians["tocsin"] / medians["plain"]
    print(f"\ningest at {stored:,} records: monitor.log {medians['tocsin']:,.0f}/s "
          f"[{min(rates['tocsin']):,.0f}-{max(rates['tocsin']):,.0f}], plain sqlite3 {medians['plain']:,.0f}/s "
          f"[{min(rates['plain']):,.0f}-{max(rates['plain']):,.0f}], ratio {ratio:.2f} (target >= 0.8)")
    benchmark.extra_info.update(tocsin_per_s=medians["tocsin"], plain_per_s=medians["plain"], ratio=ratio)
    benchmark.pedantic(lambda: None, rounds=1)  # the figures are the chunks above (extra_info)
