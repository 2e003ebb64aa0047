"""The log writer gives young partitions planner statistics, and knows which partition each log id lands in."""

from __future__ import annotations

import time

import psycopg
from pg_test_helpers import DSN, config, fresh_schema
from tocsin_postgres import PostgresStorage
from tocsin_postgres.partitions import log_window, partition_name

from tocsin.models import LogRecord

SECOND = 10**9
DAY_S = 86400


def _statistics(connection: psycopg.Connection, schema: str, partition: str) -> tuple[float, int]:
    """A partition's row count as ANALYZE last saw it (-1: never), and whether its tsv column has statistics."""
    return connection.execute(
        "SELECT c.reltuples, (SELECT count(*) FROM pg_stats s WHERE s.schemaname = %s AND s.tablename = c.relname "
        "AND s.attname = 'tsv') FROM pg_class c WHERE c.oid = %s::regclass", (schema, f'"{schema}".{partition}'),
    ).fetchone()


async def test_a_partition_is_analyzed_once_it_holds_a_thousand_rows_then_as_it_doubles():
    with fresh_schema() as name:
        storage = PostgresStorage(config(name))
        await storage.open()
        try:
            now = time.time_ns()
            partition = partition_name("logs", now // SECOND // DAY_S * DAY_S, DAY_S)
            with psycopg.connect(DSN) as connection:
                await storage.write_logs([LogRecord(time_ns=now + i, level="info", message=f"line {i}")
                                          for i in range(10)])
                assert _statistics(connection, name, partition)[1] == 0  # a few rows: not worth an ANALYZE yet
                seen = []
                for batch in range(6):
                    await storage.write_logs([LogRecord(time_ns=now + 1000 * batch + i, level="info",
                                                        message=f"a longer line of text number {i} in {batch}")
                                              for i in range(1000)])
                    seen.append(_statistics(connection, name, partition))
            assert all(tsv == 1 for _, tsv in seen[2:])
            counts = sorted({rows for rows, _ in seen if rows > 0})
            assert counts[0] >= 1000 and len(counts) >= 2 and counts[-1] >= 2 * counts[0]  # analyzed again, later
        finally:
            await storage.close()


async def test_log_window_names_the_partition_each_row_lands_in(storage, schema):
    day = time.time_ns() // SECOND // DAY_S * DAY_S
    boundary = (day + DAY_S) * SECOND  # between today's partition and tomorrow's
    times = [boundary - 2_000_000, boundary - 1, boundary, boundary + 1, boundary + 2_000_000]
    await storage.write_logs([LogRecord(time_ns=t, level="info", message="edge") for t in times])
    with psycopg.connect(DSN) as connection:
        rows = connection.execute(f'SELECT id, tableoid::regclass::text FROM "{schema}".logs').fetchall()
    assert len(rows) == len(times)
    landed = {partition.rpartition(".")[2] for _, partition in rows}
    assert len(landed) == 2
    for log_id, partition in rows:
        assert partition.rpartition(".")[2] == partition_name("logs", log_window(log_id, DAY_S), DAY_S)
