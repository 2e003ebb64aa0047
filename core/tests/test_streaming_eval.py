"""Streaming evaluation answers metric rules exactly as the storage query does, on the same data.

A seeded generator writes rollups of a gauge, a counter and a histogram (random label sets, gaps, negative
and zero values) to a real store and hands the same rollups to `MetricWindows`, as the monitor's flush does;
then hundreds of random rules (every aggregate, `=`/`!=`/`=~`/`!~` matchers, `by` groups, windows, absent
rules) are read both ways at random times and must agree (sums to 1e-9 relative: summation order differs).
"""

from __future__ import annotations

import random

import pytest
from streaming_cases import T0, S, open_store, random_rollups, random_rule, same

from tocsin.alerting.sources import Source, read
from tocsin.alerting.windows import MetricWindows
from tocsin.signals.sketch import LogSketch
from tocsin.storage.protocol import MetricQuery
from tocsin.testing import make_monitor


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_streaming_equals_the_storage_query_on_random_rules_and_data(backend, seed, tmp_path):
    rng = random.Random(seed)
    rollups = random_rollups(rng, 0, 600)
    storage = await open_store(backend, tmp_path)
    try:
        windows = MetricWindows(declared=lambda name: True, interval_start=lambda: T0)
        compiler = make_monitor()
        rules = [compiler.alerting.compile(random_rule(rng, i)) for i in range(150)]
        windows.follow(rules)
        pending = sorted(rollups, key=lambda rollup: rollup.start_ns)
        compared = streamed = 0
        nows = [T0 + rng.randint(60, 620) * S + rng.randint(0, S) for _ in range(4)]
        for now in sorted(nows) if seed % 2 else nows:  # moving forward (windows slide), or anywhere
            # flushed so far: everything that started before a moment a little before `now` (later ones arrive
            # late, after a cycle has covered their start)
            cut = now - rng.randint(0, 15) * S
            flushed = [rollup for rollup in pending if rollup.start_ns < cut]
            pending = pending[len(flushed):]
            await storage.write_metrics(flushed)
            if seed == 4:
                rng.shuffle(flushed)  # out of order (ingested from elsewhere): scans cannot stop early
            windows.observe(flushed)
            cycle = windows.cycle()
            from_memory, from_storage = Source(storage, cycle), Source(storage)
            for rule in rules:
                query = MetricQuery(name=rule.config.metric, start_ns=now - round(rule.config.window * S) + 1,
                                    end_ns=now + 1)
                streamed += windows.metric(query) is not None
                mine, theirs = await read(rule, from_memory, now), await read(rule, from_storage, now)
                assert mine.nodata == theirs.nodata, rule.config
                assert [labels for labels, _ in mine.values] == [labels for labels, _ in theirs.values], rule.config
                for (_, a), (_, b) in zip(mine.values, theirs.values, strict=True):
                    assert same(a, b), (rule.config, a, b)
                compared += 1
        assert compared == 600 and streamed > 300  # most rules were answered from memory, not storage
    finally:
        await storage.close()


async def test_a_window_reaching_before_the_rings_began_is_read_from_storage():
    rng = random.Random(7)
    rollups = random_rollups(rng, 0, 600)
    windows = MetricWindows(declared=lambda name: name != "counter_m", interval_start=lambda: T0 + 100 * S)
    rule = make_monitor().alerting.compile({"name": "r", "metric": "gauge_m", "window": 300})
    windows.follow([rule])
    windows.observe(rollups)
    early = MetricQuery(name="gauge_m", start_ns=T0 + 50 * S, end_ns=T0 + 350 * S)
    late = MetricQuery(name="gauge_m", start_ns=T0 + 200 * S, end_ns=T0 + 500 * S)
    assert windows.metric(early) is None and windows.metric(late) is not None
    assert windows.metric(MetricQuery(name="counter_m", start_ns=T0 + 200 * S, end_ns=T0 + 500 * S)) is None
    too_long = MetricQuery(name="gauge_m", start_ns=T0 + 200 * S, end_ns=T0 + 900 * S)
    assert windows.metric(too_long) is None  # longer than any rule's window: the rings may not hold it
    windows.enabled = False
    assert windows.metric(late) is None


async def test_a_monitor_answers_its_own_metrics_from_memory_once_the_window_is_covered():
    from tocsin.clock import VirtualClock

    clock = VirtualClock(T0)
    rules = [{"name": "hot", "metric": "temp", "aggregate": "avg", "window": 60, "op": "gt", "threshold": 50},
             {"name": "slow", "metric": "latency", "aggregate": "p99", "window": 60, "by": ["route"], "op": "gt",
              "threshold": 1}]
    monitor = make_monitor(clock=clock, config={"alerting": {"rules": rules}})
    async with monitor:
        temp, latency = monitor.metrics.gauge("temp"), monitor.metrics.histogram("latency")
        await monitor.alerting.evaluate()  # tracking starts here: the rings see what is recorded from now on
        reads: list[str] = []
        storage_query = monitor.storage.query_metrics

        async def counted(query):
            reads.append(query.name)
            return await storage_query(query)

        monitor.storage.query_metrics = counted
        for second in range(1, 121):
            temp.set(40 + second / 2)
            latency.observe(second / 50, route="/a")
            clock.set(T0 + second * S)
            if second % 10 == 0:
                await monitor.flush()
        reads.clear()
        report = await monitor.alerting.evaluate()
        firing = {alert.rule for alert in await monitor.alerting.alerts("firing")}
    assert reads == [] and report.rules == 2  # both rules answered from the rings
    assert firing == {"hot", "slow"}  # temp averages ~85 over the last minute; latency p99 ~2.4 s


def test_a_sketch_subtracts_exactly_what_was_merged():
    base, extra = LogSketch(), LogSketch()
    base.add_many([0.1, 0.2, 0.0, -3.0, 5.0])
    extra.add_many([0.2, 7.0, 0.0, -3.0])
    merged = LogSketch()
    merged.merge(base)
    merged.merge(extra)
    merged.subtract(extra)
    assert merged.to_model() == base.to_model() and merged.count == base.count == 5
    with pytest.raises(ValueError, match="never merged"):
        merged.subtract(extra)
