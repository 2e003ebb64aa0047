"""Logs and metric rollups live in time partitions; a retention sweep drops whole partitions."""

from __future__ import annotations

import time

import psycopg
from pg_test_helpers import DSN

from tocsin.ext import LogQuery, MetricRollup, Retention
from tocsin.models import LogRecord

DAY = 86400 * 10**9
KEEP_ALL = Retention(metrics=None, traces=None, logs=None, alerts=None, notifications=None, health=None,
                     workflows=None)


def _partitions(schema: str, table: str) -> dict[str, int]:
    """A table's partitions with their row counts."""
    with psycopg.connect(DSN) as connection:
        names = [name for (name,) in connection.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass", (f'"{schema}".{table}',))]
        return {name: connection.execute(f'SELECT count(*) FROM "{schema}".{name}').fetchone()[0] for name in names}


async def test_windows_get_partitions_and_old_ones_are_dropped_whole(storage, schema):
    now = time.time_ns()
    old = now - 5 * DAY
    await storage.sweep(KEEP_ALL, old)  # a sweep creates the partitions of its own time and two windows ahead
    await storage.write_logs([LogRecord(time_ns=old + i, level="info", message=f"old line {i}") for i in range(50)]
                             + [LogRecord(time_ns=now, level="info", message="new line")])
    await storage.write_metrics([MetricRollup(name="m", kind="gauge", start_ns=old, interval_s=1.0, count=1,
                                              sum=1.0, min=1.0, max=1.0, last=1.0)])
    logs = _partitions(schema, "logs")
    holding = [name for name, rows in logs.items() if rows == 50]
    assert len(holding) == 1 and holding[0] != "logs_default"
    rollups = _partitions(schema, "metric_rollups")
    assert sum(rows for name, rows in rollups.items() if name != "metric_rollups_default") == 1

    deleted = await storage.sweep(Retention(logs=DAY / 1e9, metrics=DAY / 1e9), now)
    assert deleted["logs"] == 50
    assert deleted["metrics"] == 1
    assert holding[0] not in _partitions(schema, "logs")
    page = await storage.search_logs(LogQuery(text="line"))
    assert [hit.record.message for hit in page.items] == ["new line"]


async def test_a_record_outside_every_partition_lands_in_the_default_one(storage, schema):
    far = time.time_ns() + 400 * DAY
    await storage.write_logs([LogRecord(time_ns=far, level="info", message="from the future")])
    assert _partitions(schema, "logs")["logs_default"] == 1
    page = await storage.search_logs(LogQuery(text="future", start_ns=far, end_ns=far + 1))
    assert [hit.record.message for hit in page.items] == ["from the future"]

