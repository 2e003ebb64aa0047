"""The demo running inside the monitor: history first, then live traffic, nightly runs and health checks.

`DemoPlugin` is registered on the demo's monitor as a plugin: its `startup` hook (the monitor's storage is open
and its services run) seeds the history and starts the simulation, and its `shutdown` hook stops it before the
monitor flushes and closes, so nothing is recorded into a closed store.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import Awaitable, Callable

from tocsin import Monitor, hookimpl
from tocsin.ext import CheckOutcome, Event, StorageUnavailable
from tocsin_api.demo import history, narrate
from tocsin_api.demo.nightly import nightly
from tocsin_api.demo.shop import (
    LATENCY,
    REQUESTS,
    USERS,
    Shop,
    Timeline,
    active_users,
    arrivals,
    fraud_check_down,
    payments_down,
)

TICK_S = 0.5
"""Wall seconds between two batches of live requests."""


class DemoPlugin:
    """The simulated shop as a tocsin plugin: started and stopped with the monitor it is registered on."""

    def __init__(self, seed: int, *, speed: float, rps: float, history_minutes: float,
                 on_ready: Callable[[int], None], say: Callable[[str], None]) -> None:
        self.shop = Shop(random.Random(seed))  # history, then live traffic: one sequence of draws
        self.night_shop = Shop(random.Random(f"{seed}:nightly"))  # its own, so timing never reorders draws
        self.speed = speed
        self.rps = rps
        self.history_minutes = history_minutes
        self.on_ready = on_ready
        self.say = say
        self.timeline: Timeline | None = None
        self.clock: Callable[[], int] = time.time_ns
        self.tasks: list[asyncio.Task[None]] = []

    def watch(self, monitor: Monitor) -> None:
        """Declare the shop's health checks (before the monitor starts; they run every `[health] interval`):
        payments-api fails during incidents, the fraud-check dependency flaps, the storefront stays up."""
        checks: dict[str, Callable[[float], CheckOutcome]] = {
            "web": lambda demo_s: CheckOutcome(message="200 OK from /healthz"),
            "payments-api": lambda demo_s: CheckOutcome(
                status="unhealthy", message="acme-pay answers 503: connection pool exhausted",
            ) if payments_down(demo_s) else CheckOutcome(message="acme-pay answers 200"),
            "fraud-check": lambda demo_s: CheckOutcome(
                status="unhealthy", message="connection refused by fraud-check:7000",
            ) if fraud_check_down(demo_s) else CheckOutcome(message="fraud-check:7000 answers"),
        }
        for name, outcome in checks.items():
            monitor.health.check(name, timeout=1, critical=name != "fraud-check")(self.check(outcome))

    def check(self, outcome: Callable[[float], CheckOutcome]) -> Callable[[], Awaitable[CheckOutcome]]:
        """A health check function answering `outcome(demo time now)` (healthy until the demo starts)."""

        async def run() -> CheckOutcome:
            timeline = self.timeline
            return CheckOutcome() if timeline is None else outcome(timeline.demo_s(self.clock()))

        return run

    @hookimpl
    async def startup(self, monitor: Monitor) -> None:
        """Seed the history, then start live traffic and the nightly job."""
        self.clock = monitor.clock.now_ns
        self.timeline = Timeline(self.clock(), self.speed)
        made = await history.seed(monitor, self.shop, self.timeline, minutes=self.history_minutes, rps=self.rps)
        self.tasks = [asyncio.create_task(self.traffic(monitor), name="tocsin-demo-traffic"),
                      asyncio.create_task(nightly(monitor, self.night_shop, self.timeline), name="tocsin-demo-nightly")]
        self.on_ready(made)

    @hookimpl
    async def shutdown(self) -> None:
        """Stop the simulation (the monitor then flushes what it recorded)."""
        tasks, self.tasks = self.tasks, []  # quiet from here: runs cancelled by the stop are not news
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @hookimpl
    def on_event(self, event: Event) -> None:
        """Tell the terminal about alerts firing and resolving and nightly runs going wrong."""
        if self.tasks and (text := narrate.line(event)) is not None:
            self.say(text)

    async def traffic(self, monitor: Monitor) -> None:
        """Every TICK_S, the requests that arrived: their metrics through the monitor's instruments, their spans
        and logs written as the services would have sent them."""
        assert self.timeline is not None
        requests_total = monitor.metrics.counter(REQUESTS)
        latency = monitor.metrics.histogram(LATENCY)
        users = monitor.metrics.gauge(USERS)
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        for tick in itertools.count(1):  # a late tick runs at once: the ticks, and so the draws, never shift
            next_tick += TICK_S
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            now_ns = self.clock()
            demo_s = tick * TICK_S * self.speed
            users.set(active_users(demo_s))
            spans, logs = [], []
            for request in self.shop.requests(demo_s, arrivals(self.shop.rng, demo_s, TICK_S, self.rps)):
                requests_total.inc(status=str(request.status), **request.labels)
                latency.observe(request.seconds, **request.labels)
                trace, records = self.shop.records(request, now_ns - int(request.seconds * 1e9))
                spans += trace
                logs += records
            with contextlib.suppress(StorageUnavailable):  # storage busy: this tick's traces are lost, not queued
                await monitor.ingest("spans", spans)
                await monitor.ingest("logs", logs)
