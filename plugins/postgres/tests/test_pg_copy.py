"""`tocsin storage copy`: a SQLite store copied into PostgreSQL (and back) answers every query the same."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pg_test_helpers import DSN, config, fresh_schema
from tocsin_postgres import PostgresStorage
from tocsin_postgres.copy_command import copy_store
from tocsin_sqlite import SQLiteStorage

from tocsin.ext import StorageError
from tocsin.storage.protocol import AlertQuery, DeliveryQuery, ExecutionQuery, LogQuery, MetricQuery, SpanQuery
from tocsin.testing.contracts.base import ContractBase
from tocsin.testing.contracts.records import (
    make_attempt,
    make_delivery,
    make_execution,
    make_health,
    make_step,
    make_transition,
    ns_at,
    tid,
)

SEED = ContractBase()


async def _fill(store) -> None:
    await SEED._write_latency(store)
    await SEED._write_span_set(store)
    await SEED._write_log_set(store)
    await SEED._write_alert_set(store)
    await store.save_alert((await store.get_alert("a")), [make_transition("a", 1, "pending", "firing")],
                           [make_delivery("d1", 1, fingerprint="a")])
    await store.record_attempt(make_attempt("d1", 1, 2, outcome="sent"), "sent")
    await store.write_health([make_health("db", 0), make_health("db", 1, "unhealthy")])
    await store.write_workflows([make_execution("e1", 0)], [make_step("e1", "load", 1)])


async def _answers(store) -> list:
    return [
        await store.list_metrics(),
        await store.query_metrics(MetricQuery(name="latency", start_ns=ns_at(0), end_ns=ns_at(30), aggregate="p99")),
        await store.query_metrics(MetricQuery(name="latency", start_ns=ns_at(0), end_ns=ns_at(30), step_s=10)),
        await store.get_trace(tid(1)),
        (await store.search_spans(SpanQuery())).items,
        [(hit.record.id, hit.record.message, hit.snippet) for hit in
         (await store.search_logs(LogQuery(text="payment"))).items],
        (await store.search_logs(LogQuery())).items,
        (await store.list_alerts(AlertQuery())).items,
        await store.alert_history("a"),
        (await store.list_deliveries(DeliveryQuery())).items,
        await store.list_attempts("d1"),
        await store.health_history("db"),
        (await store.list_executions(ExecutionQuery())).items,
        await store.get_execution("e1"),
    ]


async def test_a_copy_answers_every_query_as_the_original(tmp_path):
    original = SQLiteStorage(SQLiteStorage.Config(path=str(tmp_path / "a.db")))
    back = SQLiteStorage(SQLiteStorage.Config(path=str(tmp_path / "b.db")))
    with fresh_schema() as schema:
        target = PostgresStorage(config(schema))
        for store in (original, target, back):
            await store.open()
        try:
            await _fill(original)
            copied = await copy_store(original, target, say=lambda line: None)
            assert copied["logs"] == 5 and copied["metric_rollups"] > 0 and copied["alert_transitions"] == 1
            expected = await _answers(original)
            assert await _answers(target) == expected
            await copy_store(target, back, say=lambda line: None)
            assert await _answers(back) == expected
            with pytest.raises(StorageError, match="not empty"):
                await copy_store(original, target, say=lambda line: None)
        finally:
            for store in (original, target, back):
                await store.close()


def test_the_command_copies_a_sqlite_file_into_postgres(tmp_path):
    source = tmp_path / "from.toml"
    source.write_text(f'[storage]\nbackend = "sqlite"\npath = "{tmp_path / "a.db"}"\n')
    with fresh_schema() as schema:
        target = tmp_path / "to.toml"
        target.write_text(f'[storage]\nbackend = "postgres"\ndsn = "{DSN}"\nschema = "{schema}"\n')
        command = [sys.executable, "-m", "tocsin", "storage", "copy", "--from", str(source), "--to", str(target)]
        missing = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert missing.returncode == 1 and "does not exist" in missing.stderr
        import asyncio

        async def seed() -> None:
            store = SQLiteStorage(SQLiteStorage.Config(path=str(tmp_path / "a.db")))
            await store.open()
            await SEED._write_log_set(store)
            await store.close()

        asyncio.run(seed())
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "logs: 5 rows" in done.stdout
