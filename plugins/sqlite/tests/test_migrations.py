"""Schema versions on SQLite: an older file is upgraded in place, a newer one is refused, strangers too."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from sqlite_test_helpers import SECOND, T0, config
from tocsin_sql import metrics
from tocsin_sql.schema import SCHEMA_VERSION
from tocsin_sql.tiers import window_start
from tocsin_sqlite import SQLiteStorage

from tocsin.builtins.memory_storage import MemoryStorage
from tocsin.errors import SchemaVersionError, StorageError
from tocsin.models import GroupState, LogRecord, MetricRollup, NotifyGroup, RepeatMark
from tocsin.signals.sketch import LogSketch
from tocsin.storage.protocol import LogQuery, MetricQuery

# What the first release (schema version 1) created, frozen here as that release wrote it.
V1_SCHEMA = """
CREATE TABLE alert_transitions ( id INTEGER NOT NULL, fingerprint TEXT NOT NULL, rule TEXT NOT NULL,
  time_ns BIGINT NOT NULL, from_state TEXT NOT NULL, to_state TEXT NOT NULL, value FLOAT, reason TEXT NOT NULL,
  actor TEXT, PRIMARY KEY (id) );
CREATE INDEX ix_alert_transitions_fingerprint ON alert_transitions (fingerprint, time_ns);
CREATE INDEX ix_alert_transitions_time ON alert_transitions (time_ns);
CREATE TABLE alerts ( fingerprint TEXT NOT NULL, rule TEXT NOT NULL, labels TEXT NOT NULL, annotations TEXT NOT NULL,
  severity TEXT NOT NULL, state TEXT NOT NULL, handling TEXT NOT NULL, value FLOAT, state_reason TEXT NOT NULL,
  active_at_ns BIGINT, fired_at_ns BIGINT, resolved_at_ns BIGINT, keep_firing_since_ns BIGINT, last_eval_ns BIGINT,
  last_notified_ns BIGINT, episode INTEGER NOT NULL, acknowledged_by TEXT, ack_comment TEXT, ack_until_ns BIGINT,
  silenced_by TEXT NOT NULL, inhibited_by TEXT NOT NULL, flapping BOOLEAN NOT NULL, updated_ns BIGINT NOT NULL,
  PRIMARY KEY (fingerprint) );
CREATE INDEX ix_alerts_updated ON alerts (updated_ns, fingerprint);
CREATE TABLE deliveries ( id TEXT NOT NULL, channel TEXT NOT NULL, fingerprint TEXT NOT NULL, kind TEXT NOT NULL,
  idempotency_key TEXT NOT NULL, payload BLOB, state TEXT NOT NULL, attempts INTEGER NOT NULL,
  created_ns BIGINT NOT NULL, next_attempt_ns BIGINT NOT NULL, lease_until_ns BIGINT, sent_ns BIGINT,
  last_error TEXT NOT NULL, PRIMARY KEY (id) );
CREATE INDEX ix_deliveries_created ON deliveries (created_ns, id);
CREATE INDEX ix_deliveries_due ON deliveries (state, next_attempt_ns);
CREATE TABLE delivery_attempts ( id INTEGER NOT NULL, delivery_id TEXT NOT NULL, attempt INTEGER NOT NULL,
  time_ns BIGINT NOT NULL, outcome TEXT NOT NULL, latency_s FLOAT NOT NULL, status_code INTEGER, error TEXT NOT NULL,
  PRIMARY KEY (id) );
CREATE INDEX ix_delivery_attempts_delivery ON delivery_attempts (delivery_id, time_ns);
CREATE TABLE health ( id INTEGER NOT NULL, component TEXT NOT NULL, status TEXT NOT NULL, time_ns BIGINT NOT NULL,
  latency_s FLOAT NOT NULL, message TEXT NOT NULL, observed FLOAT, details BLOB, PRIMARY KEY (id) );
CREATE INDEX ix_health_component_time ON health (component, time_ns);
CREATE INDEX ix_health_time ON health (time_ns);
CREATE TABLE logs ( id INTEGER NOT NULL, time_ns BIGINT NOT NULL, level SMALLINT NOT NULL, service TEXT NOT NULL,
  logger TEXT NOT NULL, trace_id BLOB, span_id BLOB, execution_id TEXT, step TEXT, message TEXT NOT NULL,
  attributes BLOB, PRIMARY KEY (id) );
CREATE INDEX ix_logs_execution ON logs (execution_id) WHERE execution_id IS NOT NULL;
CREATE INDEX ix_logs_trace ON logs (trace_id) WHERE trace_id IS NOT NULL;
CREATE TABLE metric_rollups ( series_id BIGINT NOT NULL, start_ns BIGINT NOT NULL, interval_s FLOAT NOT NULL,
  count BIGINT NOT NULL, sum FLOAT NOT NULL, min FLOAT NOT NULL, max FLOAT NOT NULL, last FLOAT NOT NULL,
  sketch BLOB, PRIMARY KEY (series_id, start_ns) ) WITHOUT ROWID;
CREATE TABLE metric_series ( id INTEGER NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL, labels TEXT NOT NULL,
  PRIMARY KEY (id) );
CREATE INDEX ix_metric_series_name ON metric_series (name);
CREATE TABLE schema_version ( version INTEGER NOT NULL, applied_ns BIGINT NOT NULL, description TEXT NOT NULL,
  PRIMARY KEY (version) );
CREATE TABLE silences ( id TEXT NOT NULL, matchers TEXT NOT NULL, starts_ns BIGINT NOT NULL, ends_ns BIGINT NOT NULL,
  created_by TEXT NOT NULL, comment TEXT NOT NULL, until_resolved BOOLEAN NOT NULL, created_ns BIGINT NOT NULL,
  PRIMARY KEY (id) );
CREATE TABLE spans ( id INTEGER NOT NULL, span_id BLOB NOT NULL, trace_id BLOB NOT NULL, parent_id BLOB,
  name TEXT NOT NULL, service TEXT NOT NULL, kind TEXT NOT NULL, start_ns BIGINT NOT NULL, end_ns BIGINT,
  status TEXT NOT NULL, status_message TEXT NOT NULL, attributes BLOB, events BLOB, links BLOB, PRIMARY KEY (id) );
CREATE INDEX ix_spans_service_start ON spans (service, start_ns, span_id);
CREATE INDEX ix_spans_start ON spans (start_ns, span_id);
CREATE INDEX ix_spans_trace ON spans (trace_id);
CREATE UNIQUE INDEX ux_spans_span_id ON spans (span_id);
CREATE TABLE tocsin_meta ( "key" TEXT NOT NULL, value BIGINT NOT NULL, PRIMARY KEY ("key") );
CREATE TABLE workflow_executions ( id TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,
  started_ns BIGINT NOT NULL, ended_ns BIGINT, params BLOB, trace_id BLOB, span_id BLOB, error TEXT,
  PRIMARY KEY (id) );
CREATE INDEX ix_workflow_executions_started ON workflow_executions (started_ns, id);
CREATE TABLE workflow_steps ( id INTEGER NOT NULL, execution_id TEXT NOT NULL, name TEXT NOT NULL,
  started_ns BIGINT NOT NULL, status TEXT NOT NULL, ended_ns BIGINT, span_id BLOB, error TEXT, traceback TEXT,
  PRIMARY KEY (id) );
CREATE INDEX ix_workflow_steps_started ON workflow_steps (started_ns);
CREATE UNIQUE INDEX ux_workflow_steps_key ON workflow_steps (execution_id, name, started_ns);
CREATE VIRTUAL TABLE logs_fts USING fts5(message, level, content='logs', content_rowid='id',
  tokenize='unicode61 remove_diacritics 1', columnsize=0);
INSERT INTO schema_version VALUES (1, 1700000000000000000, 'created at version 1');
"""


def _rollups() -> list[MetricRollup]:
    """A day of latencies every 13 s on two routes, as version 1 stored them."""
    out = []
    for n, at in enumerate(range(0, 86_400, 13)):
        sketch = LogSketch()
        sketch.add(1 + n % 97)
        out.append(MetricRollup(name="latency", kind="histogram", labels={"route": "/a" if n % 3 else "/b"},
                                start_ns=T0 + at * SECOND, interval_s=13.0, count=1, sum=float(1 + n % 97),
                                min=float(1 + n % 97), max=float(1 + n % 97), last=float(1 + n % 97),
                                sketch=sketch.to_model()))
    return out


GROUP_TABLES = ("notify_groups", "notify_members", "notify_marks")
"""The notification grouping state tables, added in version 4."""


V4_LOG_INDEX = ("CREATE VIRTUAL TABLE logs_fts USING fts5(message, level, content='logs', content_rowid='id', "
                "tokenize='unicode61 remove_diacritics 1', columnsize=0)")
"""The log index up to version 4: the level column held the level's digit."""


def _rewind_log_index(connection: sqlite3.Connection) -> None:
    """Back to the version-4 log index (digits for levels), rebuilt from what `logs` holds."""
    connection.execute("DROP TABLE logs_fts")
    connection.execute("DROP VIEW logs_fts_source")
    connection.execute(V4_LOG_INDEX)
    connection.execute("INSERT INTO logs_fts (rowid, message, level) SELECT id, message, level FROM logs")


def _rewind(path, version: int, dropped: tuple[str, ...] = ()) -> None:
    """Turn a current file back into what `version` wrote: without the tables added since, old log index."""
    with sqlite3.connect(path) as connection:
        for table in dropped:
            connection.execute(f"DROP TABLE {table}")
        _rewind_log_index(connection)
        connection.execute("UPDATE schema_version SET version = ?, description = ?",
                           (version, f"created at version {version}"))
    connection.close()


def _build_v1(path) -> None:
    """A version-1 database holding metrics and one log line, written the way version 1 wrote them."""
    prepared = metrics.prepare(_rollups())
    with sqlite3.connect(path) as connection:
        connection.executescript(V1_SCHEMA)
        connection.executemany("INSERT INTO metric_series VALUES (?, ?, ?, ?)", prepared.series)
        connection.executemany("INSERT INTO metric_rollups VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", prepared.rollups)
        log_id = (T0 >> 20) << 8
        connection.execute(
            "INSERT INTO logs (id, time_ns, level, service, logger, message) VALUES (?, ?, 3, 'api', '', ?)",
            (log_id, T0, "upgrade kept me"),
        )
        connection.execute("INSERT INTO logs_fts (rowid, message, level) VALUES (?, 'upgrade kept me', 3)", (log_id,))
    connection.close()


def _schema(path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall()
    connection.close()
    return sorted((kind, name, " ".join(sql.split())) for kind, name, sql in rows)


async def test_a_version_1_file_is_upgraded_in_place_and_keeps_its_data(tmp_path):
    path = tmp_path / "old.db"
    _build_v1(path)
    storage = SQLiteStorage(config(path))
    await storage.open()
    try:
        assert storage.schema_found == 1
        memory = MemoryStorage()
        await memory.write_metrics(_rollups())
        for aggregate in ("p99", "count", "last", "avg"):
            query = MetricQuery(name="latency", start_ns=T0, end_ns=T0 + 86_400 * SECOND, aggregate=aggregate,
                                step_s=3600)
            assert await storage.query_metrics(query) == await memory.query_metrics(query)
        rows = (await storage.stats()).rows
        assert rows["metric_rollups"] == len(_rollups())
        windows = {(r.labels["route"], w, window_start(r.start_ns, w)) for r in _rollups() for w in (60, 3600)}
        assert rows["metric_tiers"] == len(windows)  # every minute and hour touched, per route
        page = await storage.search_logs(LogQuery(text="kept", level="error"))
        assert [hit.snippet for hit in page.items] == ["upgrade [kept] me"]
    finally:
        await storage.close()
    with sqlite3.connect(path) as connection:
        versions = connection.execute("SELECT version, description FROM schema_version ORDER BY version").fetchall()
    connection.close()
    assert [version for version, _ in versions] == [*range(1, SCHEMA_VERSION + 1)]
    assert "metric_tiers" in versions[1][1] and "leases" in versions[2][1] and "notify_groups" in versions[3][1]
    fresh = tmp_path / "new.db"
    new_storage = SQLiteStorage(config(fresh))
    await new_storage.open()
    await new_storage.close()
    assert _schema(path) == _schema(fresh)


async def test_a_version_2_file_gets_the_leases_table_and_keeps_its_data(tmp_path):
    path = tmp_path / "v2.db"
    storage = SQLiteStorage(config(path))
    await storage.open()
    await storage.write_metrics(_rollups()[:10])
    await storage.close()
    _rewind(path, 2, ("leases", *GROUP_TABLES))
    assert "leases" not in {name for _, name, _ in _schema(path)}
    upgraded = SQLiteStorage(config(path))
    await upgraded.open()
    try:
        assert upgraded.schema_found == 2
        assert (await upgraded.stats()).rows["metric_rollups"] == 10
        assert await upgraded.acquire_lease("leader", "a", 15, T0)
        assert await upgraded.lease_holder("leader", T0 + SECOND) == "a"
    finally:
        await upgraded.close()
    fresh = tmp_path / "new.db"
    new_storage = SQLiteStorage(config(fresh))
    await new_storage.open()
    await new_storage.close()
    assert _schema(path) == _schema(fresh)
    assert ("table", "leases", "CREATE TABLE leases ( name TEXT NOT NULL, holder TEXT NOT NULL, "
            "expires_ns BIGINT NOT NULL, PRIMARY KEY (name) )") in _schema(fresh)


async def test_a_version_3_file_gets_the_grouping_tables_and_keeps_its_data(tmp_path):
    path = tmp_path / "v3.db"
    storage = SQLiteStorage(config(path))
    await storage.open()
    await storage.write_metrics(_rollups()[:10])
    assert await storage.acquire_lease("leader", "a", 15, T0)
    await storage.close()
    _rewind(path, 3, GROUP_TABLES)
    upgraded = SQLiteStorage(config(path))
    await upgraded.open()
    try:
        assert upgraded.schema_found == 3
        assert (await upgraded.stats()).rows["metric_rollups"] == 10
        assert await upgraded.lease_holder("leader", T0 + SECOND) == "a"
        mark = RepeatMark(channel="ops", fingerprint="fp", episode=1, time_ns=T0)
        group = NotifyGroup(channel="ops", group_id="g", first_ns=T0, last_ns=T0)
        await upgraded.save_group_state(GroupState(groups=[group], marks=[mark]))
        assert await upgraded.load_group_state() == GroupState(groups=[group], marks=[mark])
    finally:
        await upgraded.close()
    fresh = tmp_path / "new.db"
    new_storage = SQLiteStorage(config(fresh))
    await new_storage.open()
    await new_storage.close()
    assert _schema(path) == _schema(fresh)


async def test_a_version_4_file_gets_its_log_index_rebuilt_with_level_tokens(tmp_path):
    path = tmp_path / "v4.db"
    storage = SQLiteStorage(config(path))
    await storage.open()
    levels = ["debug", "info", "warning", "error", "critical"]
    await storage.write_logs([LogRecord(time_ns=T0 + n * SECOND, level=levels[n % 5], message=f"disk event {n}")
                              for n in range(50)])
    await storage.close()
    _rewind(path, 4)
    upgraded = SQLiteStorage(config(path))
    await upgraded.open()
    try:
        assert upgraded.schema_found == 4
        for query, wanted in [(LogQuery(text="disk", level="warning", limit=100), {"warning", "error", "critical"}),
                              (LogQuery(text="disk level:info level:critical", limit=100), {"info", "critical"}),
                              (LogQuery(text="-level:debug", limit=100), {"info", "warning", "error", "critical"})]:
            page = await upgraded.search_logs(query)
            assert {hit.record.level for hit in page.items} == wanted
            assert page.total == len(page.items) == 10 * len(wanted)
    finally:
        await upgraded.close()
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO logs_fts (logs_fts, rank) VALUES ('integrity-check', 1)")  # index == view
        versions = [row[0] for row in connection.execute("SELECT version FROM schema_version ORDER BY version")]
    connection.close()
    assert versions[-1] == SCHEMA_VERSION == 5


async def test_reopening_a_current_file_changes_nothing(tmp_path):
    storage = SQLiteStorage(config(tmp_path / "t.db"))
    await storage.open()
    assert storage.schema_found is None
    await storage.close()
    again = SQLiteStorage(config(tmp_path / "t.db"))
    await again.open()
    assert again.schema_found == SCHEMA_VERSION
    await again.close()


async def test_a_newer_file_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "t.db"
    storage = SQLiteStorage(config(path))
    await storage.open()
    await storage.close()
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO schema_version VALUES (99, 0, 'from the future')")
    connection.close()
    with pytest.raises(SchemaVersionError, match=rf"schema version 99.*up to {SCHEMA_VERSION}.*newer tocsin"):
        await SQLiteStorage(config(path)).open()
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT max(version) FROM schema_version").fetchone() == (99,)
    connection.close()


async def test_a_database_tocsin_did_not_create_is_refused(tmp_path):
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
    connection.close()
    with pytest.raises(StorageError, match=r"not a tocsin database.*users"):
        await SQLiteStorage(config(path)).open()


async def test_two_stores_creating_one_file_at_once_both_open(tmp_path):
    stores = [SQLiteStorage(config(tmp_path / "t.db")) for _ in range(3)]
    await asyncio.gather(*(store.open() for store in stores))
    assert sorted(store.schema_found is None for store in stores) == [False, False, True]
    for store in stores:
        await store.close()
