"""One leader per database: monitors sharing a SQLite file take turns on the leader lease, so the evaluator
(and the dispatcher, health checks and sweeps) run in one of them, and another takes over when it goes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter

import pytest
import tocsin_sqlite

from tocsin import Monitor
from tocsin.models import MetricRollup
from tocsin.storage.lease import LEASE_NAME
from tocsin.testing import make_monitor

LEASE_S = 1.0
RULE = {"name": "hot", "metric": "temp", "aggregate": "last", "window": "10m", "by": ["room"], "threshold": 50}


def leased_monitor(path, lease: str = "1s") -> Monitor:
    return make_monitor(tocsin_sqlite, config={
        "storage": {"backend": "sqlite", "path": str(path), "leader_lease": lease},
        "alerting": {"evaluation_interval": "1s", "rules": [RULE]},
    })


async def write_hot_rooms(monitor: Monitor, *rooms: str) -> None:
    now = time.time_ns()
    await monitor.storage.write_metrics([
        MetricRollup(name="temp", kind="gauge", labels={"room": room}, start_ns=now - 10**9, interval_s=1.0, count=1,
                     sum=90.0, min=90.0, max=90.0, last=90.0)
        for room in rooms
    ])


async def transitions(monitor: Monitor) -> Counter[tuple[str, str, str]]:
    found = await monitor.storage.transitions_between(0, 2**63 - 1)
    return Counter((t.fingerprint, t.from_state, t.to_state) for t in found)


async def wait_for(condition, within: float) -> float:
    """Seconds until `condition()` held (polled every 10 ms); fails past `within` seconds."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > within:
            pytest.fail(f"not within {within}s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_of_two_monitors_on_one_file_one_leads_and_alerts_are_not_recorded_twice(tmp_path):
    rooms = [f"room-{n}" for n in range(20)]
    async with leased_monitor(tmp_path / "t.db", "0s") as seeding:
        await write_hot_rooms(seeding, *rooms[:10])
    first, second = leased_monitor(tmp_path / "t.db"), leased_monitor(tmp_path / "t.db")
    events = [monitor.events.subscribe(["system"]) for monitor in (first, second)]
    await asyncio.gather(first.astart(), second.astart())  # both evaluate at once unless one follows
    try:
        leader, follower = (first, second) if first.is_leader else (second, first)
        assert leader.is_leader and not follower.is_leader
        assert await first.storage.lease_holder(LEASE_NAME, time.time_ns()) == leader.holder
        assert [e.type for e in events[(first, second).index(leader)].drain()] == ["leader"]
        assert [e.type for e in events[(first, second).index(follower)].drain()] == ["follower"]
        assert follower.alerting._task is None and follower.notify._loop_task is None  # passive
        await write_hot_rooms(follower, *rooms[10:])  # a follower records and writes like any process
        await asyncio.sleep(2.5)  # evaluation cycles at 0, 1 and 2 s, 7 lease renewals
        assert leader.is_leader and not follower.is_leader
        counts = await transitions(first)
        assert [to for (_, _, to) in counts] == ["firing"] * 20
        assert set(counts.values()) == {1}  # each transition recorded once
        assert follower.alerting.last_report is None and leader.alerting.last_report.rules == 1
    finally:
        await asyncio.gather(first.aclose(), second.aclose())


async def test_when_the_leader_closes_the_other_takes_over_within_two_lease_periods(tmp_path):
    first, second = leased_monitor(tmp_path / "t.db"), leased_monitor(tmp_path / "t.db")
    events = second.events.subscribe(["system"])
    await first.astart()
    try:
        async with second:
            assert first.is_leader and not second.is_leader
            await write_hot_rooms(first, "a")
            await wait_for(lambda: first.alerting.last_report is not None and first.alerting.last_report.alerts, 2)
            await first.aclose()  # releases the lease
            seen: list[str] = []  # the event follows the leader work's start, which follows is_leader
            took = await wait_for(lambda: seen.extend(e.type for e in events.drain()) or "leader" in seen, 2 * LEASE_S)
            assert took <= LEASE_S  # released: taken at the next try (every third of the lease)
            assert second.is_leader and seen == ["follower", "leader"]
            await wait_for(lambda: second.alerting.last_report is not None, 1)
            await asyncio.sleep(1.2)  # the new leader evaluates twice: the alert goes on firing, not again
            counts = await transitions(second)
            assert [to for (_, _, to) in counts] == ["firing"] and set(counts.values()) == {1}
    finally:
        await first.aclose()


async def test_a_leader_that_stops_renewing_is_taken_over_after_its_lease_runs_out(tmp_path):
    first, second = leased_monitor(tmp_path / "t.db"), leased_monitor(tmp_path / "t.db")
    async with first, second:
        assert first.is_leader
        first.leadership._task.cancel()  # hung: it neither renews nor releases
        stopped = time.monotonic()
        await wait_for(lambda: second.is_leader, 2 * LEASE_S)
        assert time.monotonic() - stopped >= LEASE_S * 0.6  # not before the lease had (nearly) run out
        assert await second.storage.lease_holder(LEASE_NAME, time.time_ns()) == second.holder
        assert not await first.leadership.attempt()  # it comes back: the store says someone else leads
        assert first.alerting._task is None and first.notify._loop_task is None


async def test_without_a_lease_every_monitor_leads(tmp_path):
    first, second = leased_monitor(tmp_path / "t.db", "0s"), leased_monitor(tmp_path / "t.db", "0s")
    async with first, second:
        assert first.is_leader and second.is_leader
        assert await first.storage.lease_holder(LEASE_NAME, time.time_ns()) is None


SCRIPT = textwrap.dedent("""
    import asyncio, sys, time
    import tocsin_sqlite
    from tocsin import Monitor

    async def main():
        monitor = Monitor.from_config({"storage": {"backend": "sqlite", "path": sys.argv[1], "leader_lease": "1s"},
                                       "alerting": {"evaluation_interval": "1s"}},
                                      plugins=[tocsin_sqlite], entrypoints=False)
        async with monitor:
            said = None
            while True:
                if monitor.is_leader != said:
                    said = monitor.is_leader
                    print("leader" if said else "follower", flush=True)
                await asyncio.sleep(0.01)

    asyncio.run(main())
""")


def _spawn(path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(path)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_when_the_leader_process_is_killed_the_survivor_takes_over_within_two_lease_periods(tmp_path):
    path = tmp_path / "t.db"
    leader = _spawn(path)
    survivor = None
    try:
        assert leader.stdout.readline().strip() == "leader"
        survivor = _spawn(path)
        assert survivor.stdout.readline().strip() == "follower"
        time.sleep(0.5)  # a renewal or two
        leader.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        leader.wait(10)
        assert survivor.stdout.readline().strip() == "leader"
        assert time.monotonic() - killed <= 2 * LEASE_S
    finally:
        for process in (leader, survivor):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)
