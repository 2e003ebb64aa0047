"""SQLiteStorage as a plugin: registration, config, bad input, persistence, group commit, retention."""

from __future__ import annotations

import asyncio
import sqlite3

import msgspec
import pytest
from sqlite_test_helpers import MS, SECOND, T0, config, log
from tocsin_sql import retention
from tocsin_sqlite import SQLiteStorage, vocabulary

from tocsin.assembly import config_from_data
from tocsin.errors import ConfigError, StorageError
from tocsin.models import Alert, HealthResult, LogRecord, MetricRollup, Span, WorkflowExecution
from tocsin.plugins import build_registries, make_plugin_manager
from tocsin.signals.sketch import LogSketch, gamma_for
from tocsin.storage.protocol import RETENTION_SIGNALS, LogQuery, Retention, SpanQuery, StorageBackend

DAY = 86_400


def test_registered_as_sqlite_and_the_default_backend():
    registries = build_registries(make_plugin_manager())
    assert registries.storage.get("sqlite") is SQLiteStorage
    assert isinstance(SQLiteStorage(), StorageBackend)
    assert config_from_data({}, registries=registries).storage.backend == "sqlite"


def test_config_keys_are_validated_with_their_paths():
    registries = build_registries(make_plugin_manager())
    storage = config_from_data(
        {"storage": {"path": "x.db", "durability": "strict", "busy_timeout": "250ms", "readers": 3}},
        registries=registries,
    ).storage
    assert storage.options == SQLiteStorage.Config(path="x.db", durability="strict", busy_timeout=0.25, readers=3)
    with pytest.raises(ConfigError, match=r"storage\.durability.*normal\|strict") as raised:
        config_from_data({"storage": {"durability": "paranoid", "pth": "x"}}, registries=registries)
    assert "storage.pth: unknown key" in str(raised.value)
    with pytest.raises(msgspec.ValidationError, match="readers"):
        msgspec.convert({"readers": 0}, SQLiteStorage.Config)


async def test_durability_modes_set_synchronous(tmp_path):
    for durability, expected in (("normal", 1), ("strict", 2)):
        storage = SQLiteStorage(config(tmp_path / f"{durability}.db", durability=durability))
        await storage.open()
        try:
            modes = await storage._read(lambda db: db.fetch("PRAGMA synchronous")[0][0], "read a pragma")
            journal = await storage._read(lambda db: db.fetch("PRAGMA journal_mode")[0][0], "read a pragma")
            assert (modes, journal) == (expected, "wal")
        finally:
            await storage.close()


async def test_close_leaves_one_checkpointed_file(tmp_path):
    """Readers close before the writer, so the last connection folds the WAL into the file and removes it;
    connections closing together would each see the other and leave the data in the WAL (doctor's size)."""
    for attempt in range(20):
        path = tmp_path / f"{attempt}.db"
        storage = SQLiteStorage(config(path, readers=4))
        await storage.open()
        await storage.write_logs([log(f"entry {attempt}", attempt)])
        await asyncio.gather(*(storage.search_logs(LogQuery()) for _ in range(8)))
        await storage.close()
        assert not (tmp_path / f"{attempt}.db-wal").exists()
        assert path.stat().st_size > 4096


@pytest.mark.parametrize(
    ("path", "message"),
    [(":memory:", "memory"), ("missing-dir/t.db", "does not exist")],
)
async def test_unusable_paths_are_storage_errors(tmp_path, monkeypatch, path, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StorageError, match=message):
        await SQLiteStorage(SQLiteStorage.Config(path=path)).open()


async def test_a_closed_store_refuses_calls(tmp_path):
    storage = SQLiteStorage(config(tmp_path / "t.db"))
    with pytest.raises(StorageError, match="not open"):
        await storage.write_logs([log("x", 0)])
    await storage.open()
    await storage.close()
    with pytest.raises(StorageError, match="not open"):
        await storage.search_logs(LogQuery())


async def test_unstorable_records_are_refused_whole(storage):
    with pytest.raises(StorageError, match="LogRecord"):
        await storage.write_logs([log("fine", 0), log("bad", 1, attributes={"thing": object()})])
    with pytest.raises(StorageError, match="LogRecord trace_id"):
        await storage.write_logs([log("bad id", 2, trace_id="not-hex")])
    with pytest.raises(StorageError, match="LogRecord level"):
        await storage.write_logs([LogRecord(time_ns=T0, level="loud", message="x")])
    with pytest.raises(StorageError, match="Span span_id"):
        await storage.write_spans([Span(trace_id="a" * 32, span_id="xyz", name="n", start_ns=T0)])
    assert (await storage.stats()).rows["logs"] == 0


async def test_hex_ids_of_any_case_are_stored_compactly_and_read_back_lowercase(storage):
    await storage.write_spans([Span(trace_id="AB" * 16, span_id="CD" * 8, name="n", start_ns=T0)])
    (span,) = await storage.get_trace("ab" * 16)
    assert (span.trace_id, span.span_id) == ("ab" * 16, "cd" * 8)
    assert await storage.get_trace("not a trace") == []
    sizes = await storage._read(lambda db: db.fetch("SELECT length(trace_id), length(span_id) FROM spans"), "read")
    assert sizes == [(16, 8)]


async def test_everything_survives_close_and_reopen(tmp_path):
    path = tmp_path / "t.db"
    storage = SQLiteStorage(config(path))
    await storage.open()
    alert = Alert(fingerprint="fp", rule="r", labels={"a": "b"}, silenced_by=["s"], flapping=True, updated_ns=T0)
    execution = WorkflowExecution(id="run", name="n", started_ns=T0, params={"x": [1, 2.5, None]}, trace_id="e" * 32)
    span = Span(trace_id="a" * 32, span_id="b" * 16, name="n", start_ns=T0, attributes={"k": {"nested": [1]}})
    record = log("kept", 1, attributes={"n": 1, "f": 1.5, "l": ["x"]}, trace_id="c" * 32, span_id="d" * 16,
                 execution_id="run", step="load", logger="app.db", service="api")
    await storage.write_logs([record])
    await storage.write_spans([span])
    await storage.save_alert(alert)
    await storage.save_execution(execution)
    await storage.write_health([HealthResult(component="db", status="healthy", time_ns=T0, details={"a": 1})])
    await storage.close()
    await storage.close()
    storage = SQLiteStorage(config(path))
    await storage.open()
    try:
        (hit,) = (await storage.search_logs(LogQuery(text="kept"))).items
        assert msgspec.structs.replace(hit.record, id=None) == record
        assert await storage.get_trace("a" * 32) == [span]
        assert await storage.get_alert("fp") == alert
        assert (await storage.get_execution("run")) == (execution, [])
        assert (await storage.health_history("db"))[0].details == {"a": 1}
        assert (await storage.stats()).bytes > 0
    finally:
        await storage.close()


def _rollup(name: str, sketch: LogSketch) -> MetricRollup:
    sketch.add(1.0)
    return MetricRollup(name=name, kind="histogram", start_ns=T0, interval_s=1.0, count=1, sum=1.0, min=1.0,
                        max=1.0, last=1.0, sketch=sketch.to_model())


async def test_concurrent_writes_share_commits_and_a_failing_one_fails_alone(storage):
    good = [storage.write_logs([log(f"writer {w} line {n}", n) for n in range(50)]) for w in range(20)]
    spans = [Span(trace_id="a" * 32, span_id=f"{n:016x}", name="n", start_ns=T0 + n) for n in range(10)]
    await storage.write_metrics([_rollup("m", LogSketch())])
    coarse = LogSketch(gamma_for(0.05))
    # fails inside the shared transaction after it wrote series "n": only its own savepoint is rolled back
    bad = storage.write_metrics([_rollup("n", LogSketch()), _rollup("m", coarse)])
    results = await asyncio.gather(*good, storage.write_spans(spans), bad, return_exceptions=True)
    assert all(result is None for result in results[:-1])
    assert isinstance(results[-1], StorageError) and "gamma" in str(results[-1])
    assert [info.name for info in await storage.list_metrics()] == ["m"]
    assert (await storage.search_logs(LogQuery(limit=1))).total == 1000
    assert (await storage.stats()).rows["logs"] == 1000
    assert (await storage.search_spans(SpanQuery())).total == 10


async def test_sweeping_many_logs_runs_in_chunks_and_keeps_the_index_whole(tmp_path):
    path = tmp_path / "t.db"
    storage = SQLiteStorage(config(path))
    await storage.open()
    try:
        old = [log(f"old line {n} payload " + "x" * 200, n) for n in range(retention.CHUNK * 2 + 10)]
        await storage.write_logs(old)
        await storage.write_logs([log("new line", DAY * 1000)])
        keep_all = dict.fromkeys(RETENTION_SIGNALS, None)
        deleted = await storage.sweep(Retention(**{**keep_all, "logs": DAY / 2}), T0 + DAY * SECOND)
        assert deleted == {**keep_all, **dict.fromkeys(RETENTION_SIGNALS, 0), "logs": len(old)}
        assert [hit.record.message for hit in (await storage.search_logs(LogQuery(text="line"))).items] == ["new line"]
        assert (await storage.search_logs(LogQuery(text="old"))).total == 0
    finally:
        await storage.close()
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO logs_fts (logs_fts, rank) VALUES ('integrity-check', 1)")
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        free, pages = (connection.execute(f"PRAGMA {name}").fetchone()[0] for name in ("freelist_count", "page_count"))
    connection.close()
    assert free <= 0.25 * pages  # freed pages beyond a quarter of the file went back to the file system


async def test_sweep_respects_the_time_of_each_row_at_the_cut(storage):
    records = [log(f"at {n}", n * 0.25) for n in range(20)]  # four per millisecond, around the cut
    await storage.write_logs(records)
    keep_all = dict.fromkeys(RETENTION_SIGNALS, None)
    cut_at = T0 + round(2.6 * MS)
    deleted = await storage.sweep(Retention(**{**keep_all, "logs": 1.0}), cut_at + SECOND)
    assert deleted["logs"] == sum(record.time_ns < cut_at for record in records)
    left = await storage.search_logs(LogQuery(limit=100))
    assert min(hit.record.time_ns for hit in left.items) >= cut_at


async def test_compact_merges_the_log_index_into_one_segment(storage):
    for batch in range(40):
        await storage.write_logs([log(f"batch {batch} line {n} connection", batch * 100 + n) for n in range(20)])

    def segments(db) -> int:
        return len(vocabulary._segments(db.fetch("SELECT block FROM logs_fts_data WHERE id = 10")[0][0]))

    before = await storage._read(segments, "count segments")
    page = await storage.search_logs(LogQuery(text="connection", limit=1000))
    await storage.compact()
    assert before > 1 and await storage._read(segments, "count segments") == 1
    again = await storage.search_logs(LogQuery(text="connection", limit=1000))
    assert [hit.record.id for hit in again.items] == [hit.record.id for hit in page.items] and again.total == 800
