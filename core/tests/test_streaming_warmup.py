"""Warming the streaming windows from storage: a process answers metric rules from memory from its first cycle,
with the same results as the storage query, on history an earlier run stored.

The stores here are the real memory and SQLite backends, as an earlier run left them (`_remembered`: the
history is written when the store opens) and counting the `query_metrics` calls rules make.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

import pytest
from streaming_cases import KINDS, T0, S, open_store, random_rollups, random_rule, same

from tocsin import Monitor, hookimpl
from tocsin.alerting.sources import Source, read
from tocsin.alerting.windows import MetricWindows
from tocsin.builtins.memory_storage import MemoryStorage
from tocsin.clock import VirtualClock
from tocsin.errors import StorageError
from tocsin.models import MetricRollup
from tocsin.storage.protocol import MetricQuery
from tocsin.testing import make_monitor

RULES = [
    {"name": "hot", "metric": "gauge_m", "aggregate": "avg", "window": 60, "op": "gt", "threshold": -1e18},
    {"name": "slow", "metric": "hist_m", "aggregate": "p99", "window": 300, "by": ["group"], "op": "gt",
     "threshold": -1e18},
    {"name": "busy", "metric": "counter_m", "aggregate": "rate", "window": 600, "op": "gt", "threshold": -1e18},
    {"name": "samples", "metric": "gauge_m", "aggregate": "count", "window": 600, "op": "gt", "threshold": -1e18},
    {"name": "gone", "kind": "absent", "metric": "hist_m", "window": 30, "op": "gt", "threshold": -1e18},
]
"""Rules on every kind of metric, whose values are always beyond their threshold (each series has an alert)."""








async def _assert_memory_equals_storage(rules, windows: MetricWindows, storage, now: int) -> int:
    """Read every rule from the windows and from storage at `now`; both must agree. Returns how many the
    windows answered."""
    cycle, streamed = windows.cycle(), 0
    for rule in rules:
        query = MetricQuery(name=rule.config.metric, start_ns=now - round(rule.config.window * S) + 1, end_ns=now + 1)
        streamed += windows.metric(query) is not None
        mine, theirs = await read(rule, Source(storage, cycle), now), await read(rule, Source(storage), now)
        assert mine.nodata == theirs.nodata, rule.config
        assert [labels for labels, _ in mine.values] == [labels for labels, _ in theirs.values], rule.config
        for (_, a), (_, b) in zip(mine.values, theirs.values, strict=True):
            assert same(a, b), (rule.config, a, b)
    return streamed




@pytest.mark.parametrize("backend", ["memory", "sqlite"])
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_warmed_windows_answer_every_rule_from_the_start_as_storage_does(backend, seed, tmp_path):
    rng = random.Random(seed)
    storage = await open_store(backend, tmp_path)
    try:
        await storage.write_metrics(random_rollups(rng, -700, 0, 6))  # an earlier run's history
        interval_start = T0
        windows = MetricWindows(declared=lambda name: True, interval_start=lambda: interval_start)
        compiler = make_monitor()
        rules = [compiler.alerting.compile(random_rule(rng, i, [10, 60, 95, 300, 600])) for i in range(120)]
        pending = sorted(random_rollups(rng, 0, 300, 6), key=lambda rollup: rollup.start_ns)  # this run's
        await windows.warm(rules, storage)
        assert await _assert_memory_equals_storage(rules, windows, storage, T0 + rng.randint(0, S)) == len(rules)
        for step, now_s in enumerate(sorted(rng.sample(range(5, 300), 4))):
            if step == 2:  # rules with a longer window: their metrics are warmed again, from further back
                rules += [compiler.alerting.compile(random_rule(rng, 200 + i, [1200])) for i in range(30)]
            flushed = [rollup for rollup in pending if rollup.start_ns < T0 + now_s * S]
            pending = pending[len(flushed):]
            await storage.write_metrics(flushed)
            windows.observe(flushed)
            interval_start = T0 + now_s * S
            await windows.warm(rules, storage)
            now = interval_start + rng.randint(0, S)
            assert await _assert_memory_equals_storage(rules, windows, storage, now) == len(rules)
    finally:
        await storage.close()


async def test_streaming_resumes_with_the_rollups_others_wrote_while_it_was_off():
    rng = random.Random(4)
    storage, interval_start = MemoryStorage(), T0
    windows = MetricWindows(declared=lambda name: True, interval_start=lambda: interval_start)
    compiler = make_monitor()
    rules = [compiler.alerting.compile(random_rule(rng, i, [60, 300])) for i in range(60)]
    await windows.warm(rules, storage)
    mine, theirs = random_rollups(rng, 0, 200, 6), random_rollups(rng, 0, 200, 6)
    for rollup in theirs:
        rollup.labels = {**rollup.labels, "process": "other"}
    await storage.write_metrics(mine)
    windows.observe(mine)
    windows.enabled = False  # another process writes metrics: rules read storage meanwhile
    windows.reset()  # as the alerting service does then
    await storage.write_metrics(theirs)  # never observed here
    interval_start = T0 + 200 * S
    await windows.warm(rules, storage)
    windows.enabled = True  # the other process has stopped for a lease length, less than the rules' windows
    interval_start += 60 * S
    await windows.warm(rules, storage)
    assert await _assert_memory_equals_storage(rules, windows, storage, interval_start) == len(rules)


# -- a monitor starting on a store an earlier run filled --------------------------------------------------------


def _remembered(backend: str, history: list[MetricRollup],
                before_read: Callable[[], Awaitable[None]] | None = None, readable: bool = True) -> object:
    """A plugin providing the storage backend `remembered`: `backend` with `history` written when it opens,
    counting the metric names `query_metrics` is asked for (`queried`), and awaiting `before_read` before
    each `read_rollups` (which it lacks, as a third-party backend might, unless `readable`)."""
    if backend == "memory":
        base: type = MemoryStorage
    else:
        base = pytest.importorskip("tocsin_sqlite.backend").SQLiteBackend

    class Remembered(base):  # type: ignore[misc, valid-type]
        async def open(self) -> None:
            await super().open()
            await self.write_metrics(history)
            self.queried: list[str] = []

        async def query_metrics(self, query):
            self.queried.append(query.name)
            return await super().query_metrics(query)

        async def read_rollups(self, name, start_ns, end_ns):
            if before_read is not None:
                await before_read()
            return await super().read_rollups(name, start_ns, end_ns)

        def __getattribute__(self, name):
            if name == "read_rollups" and not readable:
                raise AttributeError(name)
            return super().__getattribute__(name)

    class Plugin:
        @hookimpl
        def register_storage_backends(self, register):
            register("remembered", Remembered)

    return Plugin()


def _monitor(plugin: object, backend: str, path, clock: VirtualClock, streaming: bool = True):
    """A monitor on the `remembered` store that declares the metrics of `_rollups`; its alerting loop is not
    started, so each cycle is one `evaluate` of the test."""
    storage = {"backend": "remembered"} | ({"path": str(path)} if backend == "sqlite" else {})
    monitor = make_monitor(plugin, clock=clock, config={"storage": storage,
                                                        "alerting": {"rules": RULES, "streaming": streaming}})
    monitor.services.remove(monitor.alerting)
    for name, kind in KINDS.items():
        getattr(monitor.metrics, kind)(name)  # declared: this process records them
    return monitor


def _values(alerts) -> dict[tuple[str, tuple[tuple[str, str], ...]], float | None]:
    """Each alert's value by rule and group (its labels but the rule's own)."""
    return {(alert.rule, tuple(sorted((label, value) for label, value in alert.labels.items()
                                      if label not in ("alertname", "severity")))): alert.value for alert in alerts}


def _assert_same_values(mine: dict, theirs: dict) -> None:
    assert mine.keys() == theirs.keys()
    for key, value in mine.items():
        assert same(value, theirs[key]), (key, value, theirs[key])


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_a_new_monitor_answers_its_rules_from_memory_at_its_first_cycle(backend, tmp_path):
    history = random_rollups(random.Random(5), -700, 0, 6)
    values = {}
    for streaming in (False, True):
        clock = VirtualClock(T0)
        monitor = _monitor(_remembered(backend, history), backend, tmp_path / f"{streaming}.db", clock, streaming)
        async with monitor:
            report = await monitor.alerting.evaluate()
            values[streaming] = _values(report.alerts)
            queried = monitor.storage.queried
            if streaming:
                assert queried == []  # every rule answered from the warmed windows, none by a storage query
                gauge = monitor.metrics.gauge("gauge_m")
                for second in range(1, 121):  # this run records on: the windows take its flushes
                    gauge.set(second - 60.5, instance="i0", group="g0")
                    clock.set(T0 + second * S)
                    if second % 10 == 0:
                        await monitor.flush()
                report = await monitor.alerting.evaluate()
                assert queried == []
                streamed = _values(await monitor.alerting.alerts())
                rules = list(monitor.alerting.evaluator.rules.values())
                windows = monitor.alerting.windows
                assert await _assert_memory_equals_storage(rules, windows, monitor.storage, clock.now_ns()) == 5
            else:
                assert sorted(set(queried)) == ["counter_m", "gauge_m", "hist_m"]
    _assert_same_values(values[True], values[False])
    assert len(values[True]) == 6  # hot, slow for 3 groups, busy, samples
    assert set(streamed) == {*values[True], ("gone", ())}  # 2 min later: this run records no histogram


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_a_backend_without_read_rollups_is_read_by_query_as_before(backend, tmp_path):
    history = random_rollups(random.Random(6), -700, 0, 6)
    clock = VirtualClock(T0)
    async with _monitor(_remembered(backend, history, readable=False), backend, tmp_path / "run.db", clock) as monitor:
        report = await monitor.alerting.evaluate()
        assert sorted(set(monitor.storage.queried)) == ["counter_m", "gauge_m", "hist_m"]
        rules = list(monitor.alerting.evaluator.rules.values())
        assert await _assert_memory_equals_storage(rules, monitor.alerting.windows, monitor.storage, T0) == 0
    assert len(_values(report.alerts)) == 6


class _Gate:
    """Holds a warm-up's storage read until `release` is set; `reading` is set once the read has begun."""

    def __init__(self) -> None:
        self.reading, self.release = asyncio.Event(), asyncio.Event()

    async def __call__(self) -> None:
        self.reading.set()
        await self.release.wait()


async def _flush(monitor: Monitor) -> None:
    monitor.metrics.gauge("gauge_m").set(1000.0, instance="i0", group="g0")
    await monitor.flush()


async def _ingest(monitor: Monitor) -> None:
    late = MetricRollup(name="gauge_m", kind="gauge", labels={"instance": "i0", "group": "g0"}, start_ns=T0,
                        interval_s=5.0, count=1, sum=1000.0, min=1000.0, max=1000.0, last=1000.0)
    await monitor.ingest("metrics", [late])


@pytest.mark.parametrize("write", [_flush, _ingest])
@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_a_write_during_the_warm_up_waits_for_it_and_counts_once(backend, write, tmp_path):
    gate = _Gate()
    clock = VirtualClock(T0)
    history = random_rollups(random.Random(7), -700, 0, 6)
    async with _monitor(_remembered(backend, history, gate), backend, tmp_path / "run.db", clock) as monitor:
        clock.set(T0 + 5 * S)
        evaluation = asyncio.create_task(monitor.alerting.evaluate())
        await gate.reading.wait()  # the warm-up is reading storage
        writing = asyncio.create_task(write(monitor))
        done, _ = await asyncio.wait([writing], timeout=0.2)
        assert not done  # held back by the warm-up: its rollup can only be observed after the read
        gate.release.set()
        await evaluation
        await writing
        monitor.storage.queried.clear()
        clock.set(T0 + 6 * S)
        report = await monitor.alerting.evaluate()
        assert monitor.storage.queried == []  # answered from the warmed rings
        rules = list(monitor.alerting.evaluator.rules.values())
        assert await _assert_memory_equals_storage(rules, monitor.alerting.windows, monitor.storage, T0 + 6 * S) == 5
    stored = sum(rollup.count for rollup in history if rollup.name == "gauge_m" and rollup.start_ns >= T0 - 594 * S)
    assert _values(report.alerts)[("samples", ())] == stored + 1  # the written sample, counted once


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_a_failed_warm_up_read_falls_back_to_storage_and_is_tried_again(backend, tmp_path, caplog):
    failures = [StorageError("database is locked")]

    async def fail_once() -> None:
        if failures:
            raise failures.pop()

    clock = VirtualClock(T0)
    history = random_rollups(random.Random(9), -700, 0, 6)
    with caplog.at_level(logging.DEBUG, logger="tocsin"):
        async with _monitor(_remembered(backend, history, fail_once), backend, tmp_path / "run.db", clock) as monitor:
            await monitor.alerting.evaluate()
            queried = sorted(set(monitor.storage.queried))
            monitor.storage.queried.clear()
            clock.set(T0 + S)
            await monitor.alerting.evaluate()
            assert monitor.storage.queried == []  # read again, and warmed, at the next cycle
            rules = list(monitor.alerting.evaluator.rules.values())
            assert await _assert_memory_equals_storage(rules, monitor.alerting.windows, monitor.storage, T0 + S) == 5
    assert len(queried) == 1  # the metric whose read failed was queried from storage; the others were warmed
    assert "database is locked" in caplog.text


async def test_the_leader_streams_again_with_what_another_writer_stored_in_its_window(tmp_path):
    tocsin_sqlite = pytest.importorskip("tocsin_sqlite")
    clock = VirtualClock(T0)
    rule = {"name": "hot", "metric": "temp", "aggregate": "avg", "window": "5m", "by": ["room"], "op": "gt",
            "threshold": 50}

    def monitor_on() -> Monitor:
        monitor = make_monitor(tocsin_sqlite, clock=clock, config={
            "storage": {"backend": "sqlite", "path": str(tmp_path / "shared.db"), "leader_lease": "1h"},
            "metrics": {"flush_interval": "10s"}, "alerting": {"rules": [rule]}})
        monitor.services.remove(monitor.alerting)  # evaluation is driven by hand
        return monitor

    leader, other = monitor_on(), monitor_on()
    async with leader:
        temp = leader.metrics.gauge("temp")
        await leader.alerting.evaluate(clock.now_ns())
        async with other:
            for _ in range(6):  # a minute in which the other process records room b
                temp.set(10, room="a")
                other.metrics.gauge("temp").set(90, room="b")
                await clock.advance(10)
                await leader.flush()
                await other.flush()
            await leader.alerting.evaluate(clock.now_ns())
            assert not leader.alerting.windows.enabled
        for _ in range(9):  # 90 s on: the writers' lease (60 s) has run out, the rule's window (5 min) has not
            temp.set(10, room="a")
            await clock.advance(10)
            await leader.flush()
        await leader.alerting.evaluate(clock.now_ns())
        windows = leader.alerting.windows
        assert windows.enabled
        rules = list(leader.alerting.evaluator.rules.values())
        assert await _assert_memory_equals_storage(rules, windows, leader.storage, clock.now_ns()) == 1
        assert {alert.labels["room"] for alert in await leader.alerting.alerts("firing")} == {"b"}
