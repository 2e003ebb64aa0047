"""Write failures on PostgreSQL fall into the batch writer's two kinds: bad values are permanent (the batch is
cleaned, then halved), a server that cannot be reached is transient (the batch is kept and retried)."""

from __future__ import annotations

import time
from collections import Counter

import psycopg
import pytest
from pg_test_helpers import DSN, config
from tocsin_postgres import PostgresStorage

from tocsin.ext import LogQuery, Secret, StorageUnavailable, UnstorableRecord
from tocsin.models import LogRecord
from tocsin.signals.sanitize import sanitize
from tocsin.storage.batches import is_record_error, is_transient


def _log(message: str, **fields) -> LogRecord:
    return LogRecord(time_ns=time.time_ns(), level="info", message=message, **fields)


async def test_a_nul_character_is_a_permanent_failure_that_cleaning_fixes(storage):
    with pytest.raises(UnstorableRecord) as raised:
        await storage.write_logs([_log("before\x00after")])
    assert is_record_error(raised.value) and not is_transient(raised.value)
    reasons: Counter[str] = Counter()
    await storage.write_logs([sanitize(_log("before\x00after"), reasons)])
    assert reasons == Counter({"nul": 1})
    page = await storage.search_logs(LogQuery(text="before"))
    assert [hit.record.message for hit in page.items] == ["before\ufffdafter"]


async def test_a_nul_in_a_query_finds_what_a_cleaned_write_stored_instead_of_failing(storage):
    reasons: Counter[str] = Counter()
    await storage.write_logs([sanitize(_log("cleaned", service="a\x00b"), reasons), _log("plain", service="ab")])
    found = await storage.search_logs(LogQuery(service=["a\x00b"]))  # was a 500 through the API: a NUL in text
    assert [hit.record.service for hit in found.items] == ["a\ufffdb"]
    assert (await storage.search_logs(LogQuery(text="service:\x00"))).items == []
    assert [hit.record.message for hit in (await storage.search_logs(LogQuery(text="-service:\x00"))).items] == [
        "plain", "cleaned"]
    assert await storage.get_alert("\x00") is None
    assert await storage.delete_silence("\x00") is False


async def test_a_number_past_64_bits_is_a_permanent_failure(storage):
    with pytest.raises(UnstorableRecord):
        await storage.write_logs([LogRecord(time_ns=2**64, level="info", message="far")])
    assert (await storage.stats()).rows["logs"] == 0  # nothing of the batch was stored


async def test_a_server_dropping_its_connections_is_transient_and_writes_recover(schema):
    store = PostgresStorage(config(schema, pool_min=2, pool_max=2))
    await store.open()
    try:
        await store.write_logs([_log("first")])
        with psycopg.connect(DSN, autocommit=True) as admin:  # as when the server restarts
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                          (f"tocsin:{schema}",))
        failures = []
        for _ in range(4):  # each dead pooled connection fails one call, then the pool replaces it
            try:
                await store.write_logs([_log("second")])
                break
            except StorageUnavailable as error:
                failures.append(error)
        assert failures and all(is_transient(error) for error in failures)
        page = await store.search_logs(LogQuery(text="second"))
        assert [hit.record.message for hit in page.items] == ["second"]
    finally:
        await store.close()


async def test_an_unreachable_server_is_transient_for_writes_too():
    store = PostgresStorage(PostgresStorage.Config(dsn=Secret("postgresql://postgres@127.0.0.1:1/test"),
                                                   connect_timeout=1))
    with pytest.raises(StorageUnavailable):
        await store.open()
