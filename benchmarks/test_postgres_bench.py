"""The PostgreSQL backend at a million log rows, side by side with raw psycopg COPY into the same schema.

One module fixture grows two schemas to ROWS log records in batches of BATCH (the generator of
`test_sqlite_bench`: twelve templates, 0.1% rare codes, 24 h of timestamps, a trace id on every row): one
through `PostgresStorage.write_logs` (records built outside the timing), one with plain psycopg `COPY` of the
same rows into a schema the backend created (same tables, partitions, GIN index), ids and tsvectors computed
outside the timing: the reference is the database's own cost. Both schemas get the partitions of the data's
day first (a sweep at the data's time) and are VACUUM ANALYZEd after growing, as autovacuum would.

Then, at a million rows: ingest of one 1000-record batch per round (both sides); newest-100 searches for a
term, a phrase, a prefix and a rare code, a term plus "warning or worse" in a 1-hour range, and a trace
lookup (the backend's figures include the thread hop, decoding to LogHit, snippets and the capped total; the
reference runs the same tsquery and fetches the rows); bytes per log row; and one evaluation cycle of issue 13's
1,000 rules on PostgreSQL, streaming beside storage queries (`test_streaming_bench`'s workload and rounds).

Run: uv run pytest benchmarks/test_postgres_bench.py --benchmark-only
(TOCSIN_BENCH_ROWS=200000 for a quicker run; TOCSIN_TEST_PG_DSN for another server.)
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from test_sqlite_bench import BATCH, ROWS, SECOND, T0, _rates, _records, _rows
from test_streaming_bench import ROUNDS as ROUNDS_ALERTING
from test_streaming_bench import interleaved, recorded

pytest.importorskip("tocsin_postgres")

from tocsin_postgres import PostgresStorage
from tocsin_postgres.dialect import LOG_COLUMNS
from tocsin_postgres.fulltext import tsvector
from tocsin_sql.logkeys import assign_ids

from tocsin.ext import Secret
from tocsin.storage.protocol import LogQuery, Retention

DSN = os.environ.get("TOCSIN_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
ROUNDS = 200
KEEP = Retention(metrics=None, traces=None, logs=None, alerts=None, notifications=None, health=None, workflows=None)
TARGETS = {"ingest ratio": ">= 0.8", "search p99 (ms)": "<= 10", "alerting cycle (s)": "<= 1"}


def _config(schema: str) -> PostgresStorage.Config:
    return PostgresStorage.Config(dsn=Secret(DSN), schema=schema, pool_max=4)


class Reference:
    """The same schema, written with nothing but psycopg COPY and read with the same tsquery."""

    def __init__(self, schema: str) -> None:
        self.connection = psycopg.connect(DSN, autocommit=True, prepare_threshold=None,  # planned per query
                                          options=f"-c search_path={schema}")
        self.top: int | None = None

    def keyed(self, rows: list[tuple]) -> list[tuple]:
        """Stored rows (LOG_COLUMNS order) with the backend's ids and tsvectors, computed outside the timing."""
        ids = assign_ids([row[0] for row in rows], self.top, lambda lo, hi: None).ids
        self.top = max(ids)
        return [(log_id, t, level, service, "", trace, span, None, None, message, None, tsvector(message))
                for log_id, (t, level, service, trace, span, message) in zip(ids, rows, strict=True)]

    def write(self, rows: list[tuple]) -> None:
        """One batch in one transaction, one COPY."""
        statement = f"COPY logs ({', '.join(LOG_COLUMNS)}) FROM STDIN"
        with self.connection.transaction(), self.connection.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)


@dataclass
class Corpus:
    storage: PostgresStorage
    reference: Reference
    loop: asyncio.AbstractEventLoop
    schemas: list[str]
    traces: list[bytes] = field(default_factory=list)
    summary: dict[str, dict[str, object]] = field(default_factory=dict)

    def run(self, coroutine):
        return self.loop.run_until_complete(coroutine)


def _drop(*schemas: str) -> None:
    with psycopg.connect(DSN, autocommit=True) as connection:
        for schema in schemas:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _summary(request, corpus: Corpus) -> None:
    writer = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if writer is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        writer.write_line("")
        writer.write_line(f"tocsin-postgres at {ROWS:,} log rows (ms as median / p99 unless noted)")
        for name, row in corpus.summary.items():
            writer.write_line(f"{name:<40}" + "  ".join(f"{key}={value}" for key, value in row.items()))


@pytest.fixture(scope="module")
def corpus(request):
    try:
        psycopg.connect(DSN, connect_timeout=3).close()
    except psycopg.Error as error:
        pytest.skip(f"PostgreSQL at {DSN} is not reachable: {error}")
    schemas = [f"bench_{secrets.token_hex(4)}", f"bench_raw_{secrets.token_hex(4)}"]
    loop = asyncio.new_event_loop()
    storage = PostgresStorage(_config(schemas[0]))
    raw_storage = PostgresStorage(_config(schemas[1]))
    for store in (storage, raw_storage):  # the backend's own DDL for both; partitions for the data's day
        loop.run_until_complete(store.open())
        loop.run_until_complete(store.sweep(KEEP, T0))
    loop.run_until_complete(raw_storage.close())
    built = Corpus(storage, Reference(schemas[1]), loop, schemas)
    rng = random.Random(1)
    ours, theirs = [], []
    for first in range(0, ROWS, BATCH):
        rows = _rows(first, BATCH, rng)
        records = _records(rows)
        keyed = built.reference.keyed(rows)
        started = time.perf_counter()
        loop.run_until_complete(storage.write_logs(records))
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        built.reference.write(keyed)
        theirs.append(time.perf_counter() - started)
        if first % 5000 == 0:
            built.traces.append(rows[0][3])
    growth = {"tocsin": _rates(ours), "raw": _rates(theirs)}
    built.summary["ingest growing to 1M, last 10% (rec/s)"] = {
        "tocsin": round(growth["tocsin"]["last_10pct"]), "raw COPY": round(growth["raw"]["last_10pct"]),
        "ratio": round(growth["tocsin"]["last_10pct"] / growth["raw"]["last_10pct"], 2),
        "target": TARGETS["ingest ratio"]}
    for schema in schemas:
        with psycopg.connect(DSN, autocommit=True) as connection:
            connection.execute(f'VACUUM ANALYZE "{schema}".logs')
    with psycopg.connect(DSN) as connection:
        size = connection.execute(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c WHERE c.relnamespace = %s::regnamespace "
            "AND c.relkind = 'r' AND c.relname LIKE 'logs%%'", (schemas[0],)).fetchone()[0]
    built.summary["bytes per log row"] = {"tocsin": round(size / ROWS)}
    yield built
    loop.run_until_complete(storage.close())
    loop.close()
    built.reference.connection.close()
    _drop(*schemas)
    _summary(request, built)


def _record(corpus: Corpus, benchmark, figure: str, side: str) -> None:
    data = sorted(benchmark.stats.stats.data)
    p99 = data[min(len(data) - 1, int(0.99 * len(data)))] * 1000
    median = benchmark.stats.stats.median * 1000
    benchmark.extra_info.update(p99_ms=round(p99, 3), median_ms=round(median, 3))
    corpus.summary.setdefault(figure, {"target": TARGETS["search p99 (ms)"]})[side] = f"{median:.2f} / {p99:.2f}"


@pytest.mark.benchmark(group="postgres ingest: 1000 records per round, at 1M rows")
@pytest.mark.parametrize("side", ["tocsin", "raw"])
def test_pg_ingest_a_batch_at_a_million_rows(benchmark, corpus, side):
    rng = random.Random(7 if side == "tocsin" else 8)
    start = [ROWS * (2 if side == "tocsin" else 3)]  # later rows than the corpus, as time goes on

    def setup():
        rows = _rows(start[0], BATCH, rng)
        start[0] += BATCH
        return ((_records(rows) if side == "tocsin" else corpus.reference.keyed(rows)),), {}

    if side == "tocsin":
        benchmark.pedantic(lambda batch: corpus.run(corpus.storage.write_logs(batch)), setup=setup, rounds=30)
    else:
        benchmark.pedantic(corpus.reference.write, setup=setup, rounds=30)
    rate = BATCH / benchmark.stats.stats.median
    corpus.summary.setdefault("ingest one batch at 1M (rec/s)", {})[side] = round(rate)


SEARCHES = {
    "term": ("connection", "'connection'"),
    "phrase": ('"connection refused"', "'connection' <-> 'refused'"),
    "prefix": ("conn*", "'conn':*"),
    "rare code": ("E42", "'e42'"),
}
_RAW = "SELECT * FROM logs WHERE tsv @@ %s::tsquery ORDER BY id DESC LIMIT 100"


@pytest.mark.benchmark(group="postgres search: newest 100 at 1M rows")
@pytest.mark.parametrize("side", ["tocsin", "raw"])
@pytest.mark.parametrize("kind", sorted(SEARCHES))
def test_pg_newest_100(benchmark, corpus, kind, side):
    ours, raw = SEARCHES[kind]
    if side == "tocsin":
        query = LogQuery(text=ours, limit=100)
        page = benchmark.pedantic(lambda: corpus.run(corpus.storage.search_logs(query)), rounds=ROUNDS,
                                  warmup_rounds=5)
        assert page.items or kind == "rare code"
    else:
        rows = benchmark.pedantic(lambda: corpus.reference.connection.execute(_RAW, (raw,)).fetchall(),
                                  rounds=ROUNDS, warmup_rounds=5)
        assert rows or kind == "rare code"
    _record(corpus, benchmark, f"search {kind}", side)


@pytest.mark.benchmark(group="postgres search: term + warning or worse + 1 h, at 1M rows")
@pytest.mark.parametrize("side", ["tocsin", "raw"])
def test_pg_term_level_and_hour(benchmark, corpus, side):
    rng = random.Random(5)
    windows = [(T0 + s * SECOND, T0 + (s + 3600) * SECOND) for s in (rng.randrange(23 * 3600) for _ in range(50))]
    turn = [0]

    def window():
        turn[0] += 1
        return windows[turn[0] % len(windows)]

    if side == "tocsin":
        def search():
            start, end = window()
            return corpus.run(corpus.storage.search_logs(LogQuery(text="connection", level="warning",
                                                                  start_ns=start, end_ns=end)))
    else:
        sql = ("SELECT * FROM logs WHERE tsv @@ 'connection'::tsquery AND level >= 2 AND time_ns >= %s "
               "AND time_ns < %s ORDER BY id DESC LIMIT 100")

        def search():
            return corpus.reference.connection.execute(sql, window()).fetchall()
    benchmark.pedantic(search, rounds=ROUNDS, warmup_rounds=5)
    _record(corpus, benchmark, "search term + warning+ + 1h", side)


@pytest.mark.benchmark(group="postgres search: the logs of one trace, at 1M rows")
@pytest.mark.parametrize("side", ["tocsin", "raw"])
def test_pg_trace_lookup(benchmark, corpus, side):
    traces = corpus.traces
    turn = [0]

    def trace() -> bytes:
        turn[0] += 1
        return traces[turn[0] % len(traces)]

    if side == "tocsin":
        def search():
            return corpus.run(corpus.storage.search_logs(LogQuery(trace_id=trace().hex())))
    else:
        def search():
            return corpus.reference.connection.execute(
                "SELECT * FROM logs WHERE trace_id = %s ORDER BY id DESC LIMIT 100", (trace(),)).fetchall()
    benchmark.pedantic(search, rounds=ROUNDS, warmup_rounds=5)
    _record(corpus, benchmark, "search trace", side)


@pytest.mark.benchmark(group="postgres alerting: one cycle of issue 13's 1,000 rules")
def test_pg_one_cycle_of_the_issue_13_workload(benchmark, corpus, tmp_path):
    with recorded("postgres", tmp_path) as (loop, monitor, workload, clock):
        medians, _ = interleaved(loop, monitor, workload, clock)
        corpus.summary["alerting cycle, streaming (s, median)"] = {
            "tocsin": round(medians[True], 3), "target": TARGETS["alerting cycle (s)"]}
        corpus.summary["alerting cycle, storage queries (s, median)"] = {"tocsin": round(medians[False], 3)}
        benchmark.extra_info.update(streaming_median_s=medians[True], storage_median_s=medians[False])
        benchmark.pedantic(lambda: loop.run_until_complete(monitor.alerting.evaluate(clock.now_ns())),
                           rounds=ROUNDS_ALERTING, warmup_rounds=0,
                           setup=lambda: loop.run_until_complete(workload.until(workload.second + 10)))
