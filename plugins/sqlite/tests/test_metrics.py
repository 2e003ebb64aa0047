"""Metric queries on SQLite (rollups plus per-minute and per-hour tiers) against the memory backend."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlite_test_helpers import SECOND, T0, config, run
from tocsin_sqlite import SQLiteStorage

from tocsin.builtins.memory_storage import MemoryStorage
from tocsin.errors import StorageError
from tocsin.models import AGGREGATES, LabelMatcher, MetricRollup, SeriesPoints
from tocsin.signals.sketch import LogSketch, gamma_for
from tocsin.storage.protocol import RETENTION_SIGNALS, MetricQuery, Retention

SPAN_S = 3 * 3600 + 1234
LABELS = [{"host": "a", "route": "/x"}, {"host": "b", "route": "/x"}, {"host": "a", "route": "/y"}, {}]
_names = itertools.count()


def rollup(name: str, labels: dict[str, str], at_s: float, values: list[float], *, sketch: bool = True,
           kind: str = "histogram") -> MetricRollup:
    """A rollup summarising `values` as an instrument would."""
    summary = LogSketch()
    summary.add_many(values)
    return MetricRollup(name=name, kind=kind, labels=labels, start_ns=T0 + round(at_s * SECOND), interval_s=1.0,
                        count=len(values), sum=float(sum(values)), min=min(values), max=max(values),
                        last=values[-1], sketch=summary.to_model() if sketch else None)


@pytest.fixture(scope="module")
def backends(tmp_path_factory):
    """A SQLite store and the memory reference; each example writes its own metric name."""
    store = SQLiteStorage(config(tmp_path_factory.mktemp("metrics") / "t.db"))
    run(store.open())
    yield store, MemoryStorage()
    run(store.close())


def _approx(series: list[SeriesPoints]) -> list:
    return [(s.labels, [(t, pytest.approx(v, rel=1e-9, abs=1e-9)) for t, v in s.points]) for s in series]


HOUR = (3600 - (T0 // SECOND) % 3600) % 3600
"""Seconds after T0 at which the first whole hour (and minute) window starts: tier edges are around it."""
EDGES = sorted({max(0, HOUR + h * 3600 + d) for h in (-1, 0, 1, 2) for d in (-61, -60, -1, 0, 1, 59, 60, 61)})
_TIMES = st.one_of(  # mostly clustered around window edges, so rollups share windows and straddle them
    st.integers(0, SPAN_S),
    st.builds(lambda edge, delta: max(0, edge + delta), st.sampled_from(EDGES), st.integers(-90, 90)),
    st.builds(lambda edge, delta: max(0, edge + delta), st.sampled_from(EDGES), st.integers(-90, 90)),
)
_ROLLUPS = st.lists(
    st.tuples(
        st.sampled_from([0, 0, 0, 1, 1, 2, 3]),
        _TIMES,
        st.lists(st.floats(0.001, 1e6), min_size=1, max_size=4),
        st.booleans(),
    ),
    min_size=4,
    max_size=80,
)
_STEPS = st.sampled_from([None, None, 1, 7, 60, 90, 600, 3600, 5400])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    written=_ROLLUPS,
    batches=st.integers(1, 3),
    start=st.one_of(st.integers(-100, SPAN_S), st.sampled_from(EDGES)),
    length=st.one_of(st.integers(1, SPAN_S + 200), st.sampled_from([60, 3600, 7200, 3660, 10_000])),
    step=_STEPS,
    aggregate=st.sampled_from(AGGREGATES),
    by=st.sampled_from([None, [], ["host"]]),
    matcher=st.sampled_from(
        [None, LabelMatcher(label="host", value="a"), LabelMatcher(label="route", op="!=", value="/y")]
    ),
)
def test_queries_match_the_memory_backend(backends, written, batches, start, length, step, aggregate, by, matcher):
    store, memory = backends
    name = f"m{next(_names)}"
    rollups = [rollup(name, LABELS[i], at, values, sketch=sketch) for i, at, values, sketch in written]
    for i in range(batches):  # the same (series, start) in several writes is merged
        chunk = rollups[i::batches]
        run(store.write_metrics(chunk))
        run(memory.write_metrics(chunk))
    if step is not None and length / step > 5000:
        step = None
    query = MetricQuery(name=name, start_ns=T0 + start * SECOND, end_ns=T0 + (start + length) * SECOND,
                        aggregate=aggregate, step_s=step, by=by, matchers=[matcher] if matcher else [])
    assert _approx(run(store.query_metrics(query))) == _approx(run(memory.query_metrics(query)))


@pytest.mark.parametrize(
    "batches",
    [
        [[(HOUR + 10, 1.0), (HOUR + 10, 2.0)]],  # one start twice in one write: the later write is the newer
        [[(HOUR + 10, 1.0)], [(HOUR + 10, 2.0)]],  # ... or in two writes
        [[(HOUR + 20, 1.0)], [(HOUR + 10, 2.0)]],  # an older rollup arriving later does not become `last`
        [[(HOUR + 10, 2.0)], [(HOUR + 20, 1.0), (HOUR + 5, 3.0)]],
    ],
)
async def test_last_follows_the_latest_start_through_the_tiers(tmp_path, batches):
    store = SQLiteStorage(config(tmp_path / "t.db"))
    memory = MemoryStorage()
    await store.open()
    try:
        for batch in batches:
            for store_ in (store, memory):
                await store_.write_metrics([rollup("m", {}, at, [value]) for at, value in batch])
        for aggregate in ("last", "count", "sum", "p50"):
            query = MetricQuery(name="m", start_ns=T0, end_ns=T0 + (HOUR + 7200) * SECOND, aggregate=aggregate)
            assert _approx(await store.query_metrics(query)) == _approx(await memory.query_metrics(query))
    finally:
        await store.close()


async def test_a_day_of_one_second_rollups_is_read_from_hour_tiers(tmp_path):
    store = SQLiteStorage(config(tmp_path / "t.db"))
    memory = MemoryStorage()
    await store.open()
    try:
        rng = random.Random(3)
        day = [rollup("latency", {"route": "/"}, s, [rng.lognormvariate(-3, 0.6)]) for s in range(0, 86_400, 7)]
        for store_ in (store, memory):
            await store_.write_metrics(day)
        for aggregate in ("p99", "count", "last", "avg", "max"):
            query = MetricQuery(name="latency", start_ns=T0, end_ns=T0 + 86_400 * SECOND, aggregate=aggregate)
            assert _approx(await store.query_metrics(query)) == _approx(await memory.query_metrics(query))
        rows = (await store.stats()).rows
        assert rows["metric_rollups"] == len(day)
        assert 24 <= rows["metric_tiers"] - 1440 <= 26  # one row per minute and per hour touched
    finally:
        await store.close()


async def test_sweep_keeps_answers_equal_below_and_above_the_tier_floor(tmp_path):
    store = SQLiteStorage(config(tmp_path / "t.db"))
    memory = MemoryStorage()
    await store.open()
    try:
        rng = random.Random(5)
        data = [rollup("q", rng.choice(LABELS), rng.randrange(SPAN_S), [rng.random() + 0.1]) for _ in range(3000)]
        data.append(rollup("gone", {}, 10, [1.0]))
        keep_all = dict.fromkeys(RETENTION_SIGNALS, None)
        for store_ in (store, memory):
            await store_.write_metrics(data)
        retention = Retention(**{**keep_all, "metrics": SPAN_S - 4000.5})
        now = T0 + SPAN_S * SECOND
        assert await store.sweep(retention, now) == await memory.sweep(retention, now)
        for aggregate, step in itertools.product(("sum", "p50", "last", "rate"), (None, 60, 3600, 1000)):
            query = MetricQuery(name="q", start_ns=T0, end_ns=now, aggregate=aggregate, step_s=step, by=[])
            assert _approx(await store.query_metrics(query)) == _approx(await memory.query_metrics(query))
        assert [info.name for info in await store.list_metrics()] == ["q"]
    finally:
        await store.close()


async def test_rollups_with_different_sketch_layouts_do_not_merge(storage):
    coarse = LogSketch(gamma_for(0.05))
    coarse.add(1.0)
    await storage.write_metrics([rollup("m", {}, 0, [1.0])])
    mixed = rollup("m", {}, 0, [1.0])
    mixed.sketch = coarse.to_model()
    with pytest.raises(StorageError, match="gamma"):
        await storage.write_metrics([mixed])
    with pytest.raises(StorageError, match="gamma"):
        await storage.write_metrics([rollup("n", {}, 0, [1.0]), mixed])
    (series,) = await storage.query_metrics(MetricQuery(name="m", start_ns=T0, end_ns=T0 + SECOND, aggregate="count"))
    assert series.points == [(T0, 1.0)]


async def test_a_bad_kind_is_refused_before_writing(storage):
    bad = rollup("m", {}, 0, [1.0])
    bad.kind = "summary"
    with pytest.raises(StorageError, match="summary"):
        await storage.write_metrics([bad])
    assert await storage.list_metrics() == []
