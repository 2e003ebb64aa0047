"""`/api/v1` system endpoints: what is installed, and how ingest, buffers and storage are doing."""

from __future__ import annotations

import time

import msgspec
from litestar import get

from tocsin import Monitor
from tocsin.ext import MetricQuery, PluginInfo, StorageStats, describe_plugins
from tocsin_api.deps import MonitorDep


class BufferStats(msgspec.Struct, kw_only=True):
    """One in-memory buffer: how full it is, what it does when full (`overflow`: drop or block), how much it
    dropped and how often a caller waited for the writer (`blocked`); `max_bytes` is its memory budget (None
    when it is bounded in records), `capacity` the records that fit at their measured size."""

    size: int
    capacity: int
    max_bytes: int | None
    overflow: str
    dropped: int
    blocked: int


class Stats(msgspec.Struct, kw_only=True):
    """The state of ingest (records written, dropped and sanitized per signal), buffers, storage, and which
    process leads (runs the evaluator, dispatcher, health checks and sweeps: `lease_holder`)."""

    service: str
    storage_backend: str
    leader: bool
    holder: str
    lease_holder: str | None
    written: dict[str, float]
    dropped: dict[str, float]
    sanitized: dict[str, float]
    buffers: dict[str, BufferStats]
    storage: StorageStats


async def _counter_by(monitor: Monitor, name: str, *labels: str) -> dict[str, float]:
    storage = monitor.storage
    assert storage is not None
    series = await storage.query_metrics(MetricQuery(name=name, start_ns=0, end_ns=2**63 - 1, aggregate="sum",
                                                     by=list(labels)))
    return {"/".join(s.labels.get(label, "") for label in labels): sum(v for _, v in s.points) for s in series}


@get("/stats", summary="Ingest rates, drops, buffer fill and storage size", tags=["system"])
async def stats(monitor: MonitorDep) -> Stats:
    """Totals since the store began (tocsin's own counters), the live buffers, and the store's size."""
    storage = monitor.storage
    assert storage is not None
    buffers = {b.name: b for b in monitor.buffers.values()}
    return Stats(
        service=monitor.config.service,
        storage_backend=monitor.config.storage.backend,
        leader=monitor.is_leader,
        holder=monitor.holder,
        lease_holder=await storage.lease_holder("leader", time.time_ns()),
        written=await _counter_by(monitor, "tocsin_records_written_total", "signal"),
        dropped=await _counter_by(monitor, "tocsin_records_dropped_total", "signal", "reason"),
        sanitized=await _counter_by(monitor, "tocsin_records_sanitized_total", "signal", "reason"),
        buffers={name: BufferStats(size=len(b), capacity=b.capacity, max_bytes=b.max_bytes, overflow=b.overflow,
                                   dropped=b.dropped, blocked=b.blocked) for name, b in buffers.items()},
        storage=await storage.stats(),
    )


@get("/plugins", summary="Installed plugins, their hooks and what each registers", tags=["system"])
async def plugins(monitor: MonitorDep) -> list[PluginInfo]:
    """What `tocsin plugins --json` shows."""
    return describe_plugins(monitor.pm, monitor.registries)


ROUTES = [stats, plugins]
