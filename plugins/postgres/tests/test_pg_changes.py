"""The change marker across processes: LISTEN/NOTIFY tells every instance on a schema of every other's commits."""

from __future__ import annotations

import asyncio
import time

from pg_test_helpers import config, drop_schema
from tocsin_postgres import PostgresStorage

from tocsin.models import LogRecord


async def _moves(store, before: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await store.change_marker() > before:
            return True
        await asyncio.sleep(0.02)
    return False


async def test_another_instance_sees_a_commit_and_its_own_reads_do_not_move_it(storage, schema):
    other = PostgresStorage(config(schema))
    await other.open()
    try:
        before = await other.change_marker()
        await storage.write_logs([LogRecord(time_ns=time.time_ns(), level="info", message="from elsewhere")])
        assert await _moves(other, before)
        settled = await other.change_marker()
        await storage.stats()
        await other.stats()
        await asyncio.sleep(0.2)
        assert await other.change_marker() == settled
    finally:
        await other.close()


async def test_instances_on_other_schemas_are_not_told(storage, schema):
    with_other_schema = PostgresStorage(config(schema + "_x"))
    await with_other_schema.open()
    try:
        before = await with_other_schema.change_marker()
        await storage.write_logs([LogRecord(time_ns=time.time_ns(), level="info", message="elsewhere")])
        assert not await _moves(with_other_schema, before, within=0.5)
    finally:
        await with_other_schema.close()
        drop_schema(schema + "_x")
