"""The shop's nightly ETL job, one "night" every `NIGHT` demo seconds, instrumented as a tocsin workflow.

The nights follow `PATTERN`: the second run fails on a bad row and the third hangs in `load` until the
scheduler kills it, so within the first minute the workflows page has a failure (with its traceback), a run
reported stuck, and the `nightly-etl-failed` alert.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools

from tocsin import Monitor
from tocsin_api.demo.shop import Shop, Timeline

NIGHT = 20.0
"""Demo seconds between two runs."""
FIRST = 4.0
"""Demo seconds before the first run."""
PATTERN = ("ok", "fail", "stuck", "ok", "ok", "ok")
STUCK_FOR = 30.0
"""Demo seconds a stuck run hangs before the scheduler cancels it."""


async def nightly(monitor: Monitor, shop: Shop, timeline: Timeline) -> None:
    """Start a run every night (each in its own task, so a stuck one does not hold up the next) until cancelled."""
    runs: set[asyncio.Task[None]] = set()
    day = datetime.date.fromtimestamp(timeline.start_ns / 1e9)
    try:
        await asyncio.sleep(timeline.wall_s(FIRST))
        for night, outcome in enumerate(itertools.cycle(PATTERN)):
            task = asyncio.create_task(run(monitor, shop, timeline, day + datetime.timedelta(days=night), outcome))
            runs.add(task)
            task.add_done_callback(runs.discard)
            await asyncio.sleep(timeline.wall_s(NIGHT))
    finally:
        for task in list(runs):
            task.cancel()
        await asyncio.gather(*runs, return_exceptions=True)


async def run(monitor: Monitor, shop: Shop, timeline: Timeline, day: datetime.date, outcome: str) -> None:
    """One night's run: extract, transform (with a nested validate step) and load, going as `outcome` says."""
    log = monitor.log.child("etl")
    rows = shop.rng.randint(8_000, 12_000)
    work = [timeline.wall_s(shop.latency(median)) for median in (1.0, 0.8, 0.5, 1.2)]
    try:
        async with monitor.workflows.execution("nightly-etl", params={"day": day.isoformat()}) as execution:
            async with execution.step("extract"):
                await asyncio.sleep(work[0])
                log.info("extracted orders", rows=rows, source="orders-db")
            async with execution.step("transform"):
                async with execution.step("transform.validate"):
                    await asyncio.sleep(work[1])
                    if outcome == "fail":
                        bad = shop.rng.randint(1, rows)
                        log.warning("row does not parse", row=bad)
                        raise ValueError(f"bad row {bad}: price 'N/A' is not a number")
                await asyncio.sleep(work[2])
                log.info("transformed", rows=rows)
            async with execution.step("load"):
                if outcome == "stuck":
                    log.warning("warehouse lock wait", table="orders_daily")
                    await asyncio.sleep(timeline.wall_s(STUCK_FOR))
                    log.error("killed by the scheduler: load held a lock too long", table="orders_daily")
                    execution.cancel("killed by the scheduler after 30 min")
                    return
                await asyncio.sleep(work[3])
                log.info("loaded", rows=rows, table="orders_daily")
    except ValueError:
        pass  # recorded as the execution's failure (with its traceback); the scheduler tries again tomorrow
