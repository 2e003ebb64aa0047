"""The virtual clock: sleepers wake in time order and see the time they asked for."""

from __future__ import annotations

import asyncio

from tocsin.clock import SystemClock, VirtualClock


async def test_virtual_clock_wakes_sleepers_in_order_at_their_time():
    clock = VirtualClock(start_ns=1_000)
    woke: list[tuple[str, int]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now_ns()))

    tasks = [asyncio.create_task(sleeper(name, s)) for name, s in (("c", 30), ("a", 10), ("b", 20))]
    await asyncio.sleep(0)
    assert clock.sleepers == 3
    await clock.advance(15)
    assert woke == [("a", 1_000 + 10 * 10**9)]
    assert clock.now_ns() == 1_000 + 15 * 10**9
    await clock.advance(60)
    assert woke == [("a", 1_000 + 10 * 10**9), ("b", 1_000 + 20 * 10**9), ("c", 1_000 + 30 * 10**9)]
    await asyncio.gather(*tasks)


async def test_a_loop_on_the_virtual_clock_runs_once_per_interval():
    clock = VirtualClock()
    ticks: list[int] = []

    async def loop() -> None:
        while True:
            ticks.append(clock.now_ns() // 10**9)
            await clock.sleep(60)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    await clock.advance(300)
    assert ticks == [0, 60, 120, 180, 240, 300]
    task.cancel()


async def test_system_clock_is_real_time():
    import time

    clock = SystemClock()
    before = time.time_ns()
    await clock.sleep(0)
    assert before <= clock.now_ns() <= time.time_ns()
