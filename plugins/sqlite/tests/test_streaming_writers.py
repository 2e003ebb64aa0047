"""Streaming evaluation with other writers: when a second process records metrics into the leader's SQLite file,
the leader answers its rules from storage (its rings hold only its own rollups), and streams again once the
other writer has stopped for a lease length."""

from __future__ import annotations

import tocsin_sqlite

from tocsin import Monitor
from tocsin.clock import VirtualClock
from tocsin.testing import make_monitor

S = 1_000_000_000
T0 = 1_700_000_000 * S
RULE = {"name": "hot", "metric": "temp", "aggregate": "avg", "window": "1m", "by": ["room"], "op": "gt",
        "threshold": 50}


def monitor_on(path, clock: VirtualClock) -> Monitor:
    monitor = make_monitor(tocsin_sqlite, clock=clock, config={
        "storage": {"backend": "sqlite", "path": str(path), "leader_lease": "1h"},
        "metrics": {"flush_interval": "10s"},
        "alerting": {"rules": [RULE]},
    })
    monitor.services.remove(monitor.alerting)  # evaluation is driven by hand
    return monitor


async def record(monitor: Monitor, clock: VirtualClock, room: str, value: float, until_s: int) -> None:
    """Record `value` for `room` every 10 s until T0 + until_s, flushing each interval."""
    while clock.now_ns() < T0 + until_s * S:
        monitor.metrics.gauge("temp").set(value, room=room)
        await clock.advance(10)
        await monitor.flush()


async def firing(monitor: Monitor) -> set[str]:
    return {alert.labels["room"] for alert in await monitor.alerting.alerts() if alert.state == "firing"}


async def test_the_leader_reads_storage_while_another_process_writes_the_metric(tmp_path):
    path, clock = tmp_path / "tocsin.db", VirtualClock(T0)
    leader, other = monitor_on(path, clock), monitor_on(path, clock)
    async with leader:
        async with other:
            assert leader.is_leader and not other.is_leader
            for _ in range(12):  # two minutes: longer than the rule's window, so the rings would answer
                leader.metrics.gauge("temp").set(10, room="a")
                other.metrics.gauge("temp").set(90, room="b")
                await clock.advance(10)
                await leader.flush()
                await other.flush()
            assert leader.is_leader
            await leader.alerting.evaluate(clock.now_ns())
            assert not leader.alerting.windows.enabled
            assert await firing(leader) == {"b"}  # room b exists only in the other process's rollups
        await record(leader, clock, "a", 10, until_s=300)  # the other writer has been gone a lease length
        await leader.alerting.evaluate(clock.now_ns())
        assert leader.alerting.windows.enabled
        assert "a" not in await firing(leader)
