"""One bad record among 10,000 good ones, through the Monitor into a real SQLite file: the good ones are
stored, the bad one is made storable (or dropped) and counted with its reason, and nothing waits behind it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import tocsin_sqlite

from tocsin.monitor import Monitor
from tocsin.signals.sanitize import NESTED_TOO_DEEP
from tocsin.storage.protocol import ExecutionQuery, LogQuery, MetricQuery, SpanQuery
from tocsin.testing import make_monitor

GOOD = 10_000
NOT_UTF8 = b"r-\xff.csv".decode("utf-8", "surrogateescape")  # what os.listdir gives for a non-UTF-8 name


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"d": value}
    return value


def sqlite_monitor(tmp_path) -> Monitor:
    return make_monitor(tocsin_sqlite, config={
        "storage": {"backend": "sqlite", "path": str(tmp_path / "hostile.db")},
        "logging": {"buffer_size": 50_000, "flush_interval": "1h"},
        "tracing": {"buffer_size": 50_000, "flush_interval": "1h"},
    })


async def _counter(monitor: Monitor, name: str) -> dict[tuple[str, str], float]:
    await monitor.flush()  # the counters themselves are metrics: write them
    series = await monitor.storage.query_metrics(MetricQuery(name=name, start_ns=0, end_ns=2**63 - 1,
                                                             aggregate="sum", by=["signal", "reason"]))
    return {(s.labels["signal"], s.labels["reason"]): sum(v for _, v in s.points) for s in series}


async def _count_logs(monitor: Monitor, text: str) -> int:
    count, cursor = 0, None
    while True:
        page = await monitor.storage.search_logs(LogQuery(text=text, limit=1000, cursor=cursor))
        count += len(page.items)
        if page.next_cursor is None:
            return count
        cursor = page.next_cursor


BAD_LOG_FIELDS: dict[str, tuple[Callable[[], dict[str, Any]], str, Callable[[Any], bool]]] = {
    "lone surrogate in a field": (lambda: {"file": NOT_UTF8}, "surrogate", lambda v: v["file"] == "r-\ufffd.csv"),
    "int past 64 bits": (lambda: {"big": 2**64}, "big_int", lambda v: v["big"] == str(2**64)),
    "negative int past 64 bits": (lambda: {"big": -(2**63) - 1}, "big_int", lambda v: v["big"] == str(-(2**63) - 1)),
}


@pytest.mark.parametrize("kind", sorted(BAD_LOG_FIELDS))
async def test_one_unstorable_log_field_among_ten_thousand_is_made_storable_and_counted(tmp_path, kind):
    fields, reason, stored_as = BAD_LOG_FIELDS[kind]
    monitor = sqlite_monitor(tmp_path)
    async with monitor:
        for i in range(GOOD // 2):
            monitor.log.info("good record", i=i)
        monitor.log.info("bad record", **fields())
        for i in range(GOOD // 2, GOOD):
            monitor.log.info("good record", i=i)
        await monitor.flush()
        assert await _count_logs(monitor, "good") == GOOD
        [bad] = (await monitor.storage.search_logs(LogQuery(text="bad"))).items
        assert stored_as(bad.record.attributes)
        sanitized = await _counter(monitor, "tocsin_records_sanitized_total")
        assert sanitized == {("logs", reason): 1}


async def test_a_lone_surrogate_in_the_message_is_replaced_and_later_batches_are_not_held_up(tmp_path):
    monitor = sqlite_monitor(tmp_path)
    async with monitor:
        monitor.log.info(f"reading {NOT_UTF8}")
        await monitor.flush()
        for i in range(GOOD):
            monitor.log.info("later record", i=i)
        await monitor.flush()
        assert await _count_logs(monitor, "later") == GOOD
        [bad] = (await monitor.storage.search_logs(LogQuery(text="reading"))).items
        assert bad.record.message == "reading r-\ufffd.csv"
        assert monitor._writers["logs"].pending == []


async def test_nesting_past_sixteen_levels_is_cut_and_counted(tmp_path):
    monitor = sqlite_monitor(tmp_path)
    async with monitor:
        monitor.log.info("deep record", tree=_nested(40))
        monitor.log.info("shallow record", tree=_nested(3))
        await monitor.flush()
        [deep] = (await monitor.storage.search_logs(LogQuery(text="deep"))).items
        value, depth = deep.record.attributes["tree"], 1
        while isinstance(value, dict):
            value, depth = value["d"], depth + 1
        assert value == NESTED_TOO_DEEP and depth <= 17
        [shallow] = (await monitor.storage.search_logs(LogQuery(text="shallow"))).items
        assert shallow.record.attributes["tree"] == _nested(3)
        assert await _counter(monitor, "tocsin_records_sanitized_total") == {("logs", "nesting"): 1}


async def test_a_record_that_cannot_be_made_storable_is_dropped_with_its_reason_and_the_rest_stored(tmp_path):
    monitor = sqlite_monitor(tmp_path)
    async with monitor:
        events = monitor.events.subscribe(["system"])
        now = monitor.clock.now_ns()
        for i in range(GOOD):
            monitor.log.record("info", "good record", {"i": i}, name="app", time_ns=now + i)
            if i == GOOD // 2:  # a timestamp no column holds: nothing can be made of it
                monitor.log.record("info", "bad record", {}, name="app", time_ns=2**64)
        await monitor.flush()
        assert await _count_logs(monitor, "good") == GOOD
        assert await _count_logs(monitor, "bad") == 0
        dropped = [e for e in events.drain() if e.type == "records_dropped"]
        assert [(e.data["signal"], e.data["reason"], e.data["count"]) for e in dropped] == [
            ("logs", "number_out_of_range", 1)]
        assert (await _counter(monitor, "tocsin_records_dropped_total")) == {("logs", "number_out_of_range"): 1}


async def test_spans_metric_labels_and_workflow_records_follow_the_same_rules(tmp_path):
    monitor = sqlite_monitor(tmp_path)
    async with monitor:
        with monitor.tracer.span("bad span", attributes={"file": NOT_UTF8, "big": 2**70}) as bad_span:
            pass
        for i in range(1000):
            with monitor.tracer.span("good span", attributes={"i": i}):
                pass
        monitor.metrics.counter("files_total").inc(file=NOT_UTF8)
        monitor.metrics.counter("files_total").inc(file="plain.csv")
        with monitor.workflows.execution("import", params={"file": NOT_UTF8, "rows": 2**65}) as run:
            pass
        await monitor.flush()
        [span] = await monitor.storage.get_trace(bad_span.trace_id)
        assert span.attributes == {"file": "r-\ufffd.csv", "big": str(2**70)}
        good = await monitor.storage.search_spans(SpanQuery(name="good span", limit=1000))
        assert len(good.items) == 1000
        series = await monitor.storage.query_metrics(MetricQuery(name="files_total", start_ns=0, end_ns=2**63 - 1,
                                                                 aggregate="sum", by=["file"]))
        assert sorted(s.labels["file"] for s in series) == ["plain.csv", "r-\ufffd.csv"]
        execution, _ = await monitor.storage.get_execution(run.id)
        assert execution.params == {"file": "r-\ufffd.csv", "rows": str(2**65)}
        executions = await monitor.storage.list_executions(ExecutionQuery(name="import"))
        assert len(executions.items) == 1
        sanitized = await _counter(monitor, "tocsin_records_sanitized_total")
        assert {signal for signal, _ in sanitized} == {"spans", "metrics", "workflows"}


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_a_histogram_series_with_a_bad_label_keeps_its_sketch_and_its_batch(tmp_path, backend):
    """Cleaning a batch (here for one label that is not UTF-8) must leave the sketches' integer bucket keys
    alone: they used to become strings, and the memory backend then dropped every rollup of the batch."""
    monitor = sqlite_monitor(tmp_path) if backend == "sqlite" else make_monitor(config={
        "storage": {"backend": "memory"}})
    async with monitor:
        for value in (0.1, 0.2, 0.4):
            monitor.metrics.histogram("read_seconds").observe(value, file=NOT_UTF8)
            monitor.metrics.histogram("read_seconds").observe(value * 10, file="plain.csv")
        await monitor.flush()
        series = await monitor.storage.query_metrics(MetricQuery(name="read_seconds", start_ns=0, end_ns=2**63 - 1,
                                                                 aggregate="max", by=["file"]))
        highest = {s.labels["file"]: [v for _, v in s.points] for s in series}
        assert highest == {"plain.csv": [4.0], "r-\ufffd.csv": [0.4]}
        p99 = await monitor.storage.query_metrics(MetricQuery(name="read_seconds", start_ns=0, end_ns=2**63 - 1,
                                                              aggregate="p99", by=["file"]))
        assert {s.labels["file"]: round(s.points[0][1], 1) for s in p99} == {"plain.csv": 2.0, "r-\ufffd.csv": 0.2}


async def test_a_locked_database_is_a_transient_failure_the_batch_is_kept_and_written_later(tmp_path):
    import sqlite3

    monitor = make_monitor(tocsin_sqlite, config={
        "storage": {"backend": "sqlite", "path": str(tmp_path / "locked.db"), "busy_timeout": "50ms"},
        "logging": {"flush_interval": "1h"},
    })
    async with monitor:
        for i in range(100):
            monitor.log.info("queued record", i=i)
        other = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        try:
            await monitor._flush_logs()
            assert len(monitor._writers["logs"].pending) == 100
        finally:
            other.execute("ROLLBACK")
            other.close()
        monitor.log.info("queued record", i=100)
        await monitor._flush_logs()
        assert monitor._writers["logs"].pending == []
        assert await _count_logs(monitor, "queued") == 101
        assert await _counter(monitor, "tocsin_records_dropped_total") == {}


async def test_ingest_stores_records_made_elsewhere_on_the_same_path_and_a_locked_store_raises(tmp_path):
    import sqlite3

    from tocsin.errors import StorageUnavailable
    from tocsin.models import LogRecord

    monitor = make_monitor(tocsin_sqlite, config={
        "storage": {"backend": "sqlite", "path": str(tmp_path / "ingest.db"), "busy_timeout": "50ms"}})
    async with monitor:
        now = monitor.clock.now_ns()
        records = [LogRecord(time_ns=now + i, level="info", message=f"ingested {NOT_UTF8}", service="remote")
                   for i in range(100)]
        outcome = await monitor.ingest("logs", records)
        assert (outcome.written, outcome.sanitized) == (100, {"surrogate": 100})
        assert await _count_logs(monitor, "ingested") == 100
        other = sqlite3.connect(tmp_path / "ingest.db", isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(StorageUnavailable):
                await monitor.ingest("logs", records[:1])
        finally:
            other.execute("ROLLBACK")
            other.close()
