"""tocsin.signals.metrics: rollup semantics, label handling, the series cap, rules, thread safety and percentiles."""

from __future__ import annotations

import enum
import logging
import math
import random
import re
import sys
import threading
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tocsin.errors import ConfigError, InstrumentError
from tocsin.models import Event, MetricRollup
from tocsin.signals.metrics import InstrumentInfo, MetricsRegistry
from tocsin.signals.series import FOLD_AT
from tocsin.signals.sketch import LogSketch

SECOND = 1_000_000_000


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start_ns: int = 1_000 * SECOND) -> None:
        self.now = start_ns

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * SECOND)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def events() -> list[Event]:
    return []


@pytest.fixture
def registry(clock: FakeClock, events: list[Event]) -> MetricsRegistry:
    return MetricsRegistry(on_event=events.append, clock=clock)


@pytest.fixture
def busy_switching():
    """Make the interpreter switch threads far more often, so races show up within a small test."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def by_labels(rollups: list[MetricRollup], name: str) -> dict[tuple[tuple[str, str], ...], MetricRollup]:
    """The rollups of metric `name`, keyed by their sorted label items."""
    found = {tuple(sorted(r.labels.items())): r for r in rollups if r.name == name}
    assert len(found) == len([r for r in rollups if r.name == name]), "two rollups for one series"
    return found


def only(rollups: list[MetricRollup], name: str) -> MetricRollup:
    """The single rollup of metric `name`."""
    (rollup,) = by_labels(rollups, name).values()
    return rollup


def summary(rollup: MetricRollup) -> tuple[int, float, float, float, float]:
    return rollup.count, rollup.sum, rollup.min, rollup.max, rollup.last


# -- counters ---------------------------------------------------------------------------------------


def test_counter_reports_the_increase_per_interval_and_the_running_total(registry, clock):
    requests = registry.counter("requests_total", "Requests served")
    requests.inc()
    requests.inc()
    requests.inc(3)
    requests.inc(0.5)
    clock.advance(10)
    first = only(registry.collect(), "requests_total")
    assert first.kind == "counter"
    assert first.labels == {}
    assert summary(first) == (4, 5.5, 0.5, 3.0, 5.5)  # min/max over increments, last = running total
    assert first.sketch is None
    assert (first.start_ns, first.interval_s) == (1_000 * SECOND, 10.0)

    requests.inc(2)
    clock.advance(5)
    second = only(registry.collect(), "requests_total")
    assert summary(second) == (1, 2.0, 2.0, 2.0, 7.5)
    assert (second.start_ns, second.interval_s) == (1_010 * SECOND, 5.0)


def test_counter_with_no_increments_in_an_interval_emits_nothing(registry):
    requests = registry.counter("requests_total")
    assert registry.collect() == []
    requests.inc(kind="a")
    assert len(registry.collect()) == 1
    assert registry.collect() == []


def test_counter_keeps_one_series_per_label_set(registry):
    requests = registry.counter("http_requests_total")
    requests.inc(route="/", code=200)
    requests.inc(code="200", route="/")  # same set: other order, value as str
    requests.inc(5, route="/", code=500)
    requests.inc()
    series = by_labels(registry.collect(), "http_requests_total")
    assert {key: (r.count, r.sum) for key, r in series.items()} == {
        (("code", "200"), ("route", "/")): (2, 2.0),
        (("code", "500"), ("route", "/")): (1, 5.0),
        (): (1, 1.0),
    }


def test_bound_handle_records_into_the_same_series(registry):
    requests = registry.counter("requests_total")
    handle = requests.labels(route="/a")
    assert requests.labels(route="/a") is handle
    handle.inc()
    handle.inc(4)
    requests.inc(route="/a")
    assert handle.labels == {"route": "/a"}
    assert summary(only(registry.collect(), "requests_total")) == (3, 6.0, 1.0, 4.0, 6.0)


def test_equal_label_values_of_different_types_are_different_series(registry):
    flags = registry.counter("flags_total")
    for value in (1, True, 1.0, "1", True, 1, 1.0, "1", Fraction(1), True):
        flags.inc(on=value)
    series = by_labels(registry.collect(), "flags_total")
    assert {key[0][1]: rollup.sum for key, rollup in series.items()} == {"1": 5.0, "True": 3.0, "1.0": 2.0}


def test_str_enum_label_values_use_their_string_value_whatever_came_first(registry):
    class Color(str, enum.Enum):  # noqa: UP042 - the mixin (not StrEnum) is the case where str() differs
        RED = "red"

    colors = registry.counter("colors_total")
    for value in (Color.RED, "red", Color.RED, "red"):
        colors.inc(color=value)
    assert only(registry.collect(), "colors_total").labels == {"color": "red"}


def test_unhashable_label_values_are_recorded_as_their_str(registry):
    requests = registry.counter("requests_total")
    requests.inc(tags=["a", "b"])
    requests.inc(tags=["a", "b"])
    assert only(registry.collect(), "requests_total").labels == {"tags": "['a', 'b']"}


# -- gauges -----------------------------------------------------------------------------------------


def test_gauge_reports_the_values_it_held(registry):
    temperature = registry.gauge("temperature_celsius", unit="celsius")
    temperature.set(20)
    temperature.inc()
    temperature.inc(2.5)
    temperature.dec()
    temperature.set(10)
    temperature.dec(4)
    rollup = only(registry.collect(), "temperature_celsius")
    # values held: 20, 21, 23.5, 22.5, 10, 6
    assert rollup.kind == "gauge"
    assert summary(rollup) == (6, 103.0, 6.0, 23.5, 6.0)


def test_gauge_left_alone_repeats_its_current_value(registry, clock):
    queue = registry.gauge("queue_depth")
    queue.set(7, queue="a")
    registry.collect()
    clock.advance(30)
    rollup = only(registry.collect(), "queue_depth")
    assert summary(rollup) == (1, 7.0, 7.0, 7.0, 7.0)
    assert rollup.labels == {"queue": "a"}
    assert rollup.interval_s == 30.0


def test_gauge_never_set_emits_nothing_and_inc_starts_at_zero(registry):
    registry.gauge("idle").labels(pool="p")
    workers = registry.gauge("workers")
    workers.labels(pool="p").dec()
    workers.dec(pool="p")
    assert [r.name for r in registry.collect()] == ["workers"]
    assert [(r.name, r.last) for r in registry.collect()] == [("workers", -2.0)]


# -- histograms -------------------------------------------------------------------------------------


def test_histogram_reports_count_sum_min_max_last_and_a_sketch(registry):
    latency = registry.histogram("request_seconds", "Request latency", unit="seconds")
    values = [0.2, 0.1, 0.4, 0, -0.3, 7]
    for value in values:
        latency.observe(value, route="/")
    rollup = only(registry.collect(), "request_seconds")
    assert rollup.kind == "histogram"
    assert summary(rollup) == (6, pytest.approx(7.4), -0.3, 7.0, 7.0)
    sketch = LogSketch.from_model(rollup.sketch)
    assert sketch.count == 6
    assert sketch.zeros == 1
    assert sum(rollup.sketch.negative.values()) == 1
    assert registry.collect() == []


def test_histogram_folds_pending_values_while_recording_and_stays_exact(registry):
    latency = registry.histogram("request_seconds")
    handle = latency.labels()
    values = list(range(1, 5 * FOLD_AT + 7))
    for value in values:
        handle.observe(value)
    assert len(handle._pending) < FOLD_AT  # memory stays bounded between collects
    rollup = only(registry.collect(), "request_seconds")
    assert summary(rollup) == (len(values), float(sum(values)), 1.0, float(values[-1]), float(values[-1]))
    assert LogSketch.from_model(rollup.sketch).count == len(values)


def test_record_is_an_ad_hoc_histogram(registry):
    registry.record("job_seconds", 3, {"job": "backup"})
    registry.record("job_seconds", 5, {"job": "backup"})
    registry.record("job_seconds", 1)
    series = by_labels(registry.collect(), "job_seconds")
    assert summary(series[(("job", "backup"),)]) == (2, 8.0, 3.0, 5.0, 5.0)
    assert series[()].count == 1
    assert series[()].kind == "histogram"
    assert [info.kind for info in registry.instruments()] == ["histogram"]


# -- registry ---------------------------------------------------------------------------------------


def test_same_name_gives_the_same_instrument(registry):
    assert registry.counter("a_total") is registry.counter("a_total")
    assert registry.gauge("b") is registry.gauge("b", "ignored later description")
    assert registry.histogram("c") is registry.histogram("c")


@pytest.mark.parametrize(
    ("declare", "redeclare", "kinds"),
    [
        ("counter", "gauge", ("counter", "gauge")),
        ("gauge", "histogram", ("gauge", "histogram")),
        ("histogram", "counter", ("histogram", "counter")),
    ],
)
def test_same_name_as_another_kind_is_an_error(registry, declare, redeclare, kinds):
    getattr(registry, declare)("jobs")
    with pytest.raises(InstrumentError, match=rf"'jobs' is already declared as a {kinds[0]}.*{kinds[1]}"):
        getattr(registry, redeclare)("jobs")


def test_record_into_a_counter_name_is_an_error(registry):
    registry.counter("jobs_total")
    with pytest.raises(InstrumentError, match="'jobs_total' is already declared as a counter"):
        registry.record("jobs_total", 1.0)


def test_collect_drains_every_kind_and_reports_the_interval(registry, clock):
    registry.counter("c").inc()
    registry.gauge("g").set(1)
    registry.histogram("h").observe(1)
    clock.advance(2.5)
    rollups = registry.collect()
    assert sorted(r.name for r in rollups) == ["c", "g", "h"]
    assert {(r.start_ns, r.interval_s) for r in rollups} == {(1_000 * SECOND, 2.5)}
    clock.advance(1)
    assert [(r.name, r.start_ns, r.interval_s) for r in registry.collect()] == [("g", 1_002_500_000_000, 1.0)]


def test_instruments_lists_name_kind_description_unit_and_series(registry):
    requests = registry.counter("requests_total", "Requests served", "requests")
    requests.inc(route="/a")
    requests.inc(route="/b")
    registry.histogram("latency_seconds", unit="seconds")
    assert registry.instruments() == [
        InstrumentInfo(name="latency_seconds", kind="histogram", description="", unit="seconds", series=0),
        InstrumentInfo(
            name="requests_total", kind="counter", description="Requests served", unit="requests", series=2
        ),
    ]


@pytest.mark.parametrize("max_series", [0, -1, True, 2.5])
def test_max_series_must_be_a_positive_int(max_series):
    with pytest.raises(ConfigError, match="max_series"):
        MetricsRegistry(max_series=max_series)


# -- the series cap ---------------------------------------------------------------------------------


def test_label_sets_beyond_the_cap_go_to_one_overflow_series_with_one_event(clock, events):
    registry = MetricsRegistry(max_series=3, on_event=events.append, clock=clock)
    users = registry.counter("logins_total")
    for n in range(10):
        users.inc(user=f"u{n}")
    users.inc(user="u9")
    users.labels(user="u42").inc(5)
    users.inc(user="u0")  # an existing series still records into itself
    series = by_labels(registry.collect(), "logins_total")
    assert set(series) == {(("user", "u0"),), (("user", "u1"),), (("user", "u2"),), (("overflow", "true"),)}
    assert series[(("overflow", "true"),)].sum == 7 + 1 + 5
    assert series[(("user", "u0"),)].sum == 2
    assert len(events) == 1
    (event,) = events
    assert (event.topic, event.type, event.time_ns) == ("metrics", "cardinality_limit", clock.now)
    assert event.data["metric"] == "logins_total"
    assert event.data["max_series"] == 3
    assert event.data["labels"] == {"user": "u3"}
    assert event.data["severity"] == "warning"
    assert registry.instruments()[0].series == 4


def test_the_cap_is_per_metric(clock, events):
    registry = MetricsRegistry(max_series=2, on_event=events.append, clock=clock)
    for name in ("a", "b"):
        for n in range(3):
            registry.histogram(name).observe(n, n=n)
    assert [event.data["metric"] for event in events] == ["a", "b"]


def test_a_failing_event_sink_does_not_break_recording(clock, caplog):
    def explode(event: Event) -> None:
        raise RuntimeError("sink down")

    registry = MetricsRegistry(max_series=1, on_event=explode, clock=clock)
    gauge = registry.gauge("g")
    with caplog.at_level(logging.ERROR, logger="tocsin.signals.metrics"):
        gauge.set(1, n=1)
        gauge.set(2, n=2)
    assert "cardinality_limit event of metric 'g'" in caplog.text
    assert by_labels(registry.collect(), "g")[(("overflow", "true"),)].last == 2.0


# -- rules ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["1abc", "a-b", "", "a b", "métrique", "a.b"])
def test_invalid_metric_names_are_refused_with_the_rule(registry, name):
    with pytest.raises(InstrumentError, match=r"invalid metric name .*must match \[a-zA-Z_:\]"):
        registry.counter(name)
    with pytest.raises(InstrumentError, match="invalid metric name"):
        registry.record(name, 1.0)


@pytest.mark.parametrize("name", [None, 5, ("a",)])
def test_non_str_metric_names_are_refused(registry, name):
    with pytest.raises(InstrumentError, match="invalid metric name"):
        registry.histogram(name)


def test_valid_metric_names(registry):
    for name in ("a", "_a", ":a", "ns:sub_system:requests_total", "A9"):
        registry.gauge(name)
    assert len(registry.instruments()) == 5


@pytest.mark.parametrize("label", ["__reserved", "1a", "a-b", "", "a.b"])
def test_invalid_label_names_are_refused_with_the_rule(registry, label):
    counter = registry.counter("requests_total")
    expected = rf"invalid label name '{re.escape(label)}' on metric 'requests_total': .*must match"
    with pytest.raises(InstrumentError, match=expected):
        counter.inc(**{label: "x"})
    with pytest.raises(InstrumentError, match=expected):
        counter.labels(**{label: "x"})
    with pytest.raises(InstrumentError, match="invalid label name"):
        registry.record("latency", 1.0, {label: "x"})
    assert registry.collect() == []


def test_non_str_label_names_in_record_are_refused(registry):
    with pytest.raises(InstrumentError, match="invalid label name 1 on metric 'latency'"):
        registry.record("latency", 1.0, {1: "x"})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("value", "type_name"), [(True, "bool"), ("1", "str"), (None, "NoneType"), (1j, "complex")]
)
def test_values_must_be_int_or_float(registry, value, type_name):
    message = rf"metric 'm_{{}}': a recorded value must be an int or float, got {type_name}"
    with pytest.raises(InstrumentError, match=message.format("c")):
        registry.counter("m_c").inc(value)
    with pytest.raises(InstrumentError, match=message.format("c")):
        registry.counter("m_c").labels(a="b").inc(value)
    with pytest.raises(InstrumentError, match=message.format("g")):
        registry.gauge("m_g").set(value)
    with pytest.raises(InstrumentError, match=message.format("g")):
        registry.gauge("m_g").inc(value)
    with pytest.raises(InstrumentError, match=message.format("h")):
        registry.histogram("m_h").observe(value)
    with pytest.raises(InstrumentError, match=message.format("h")):
        registry.histogram("m_h").labels().observe(value)
    with pytest.raises(InstrumentError, match=message.format("r")):
        registry.record("m_r", value)
    assert registry.collect() == []


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 10**400, Fraction(10**400, 3)])
def test_values_must_be_finite_and_fit_a_float(registry, value):
    expected = r"metric '.': a recorded value must be finite and within float range, got (nan|inf|-inf|3333|1000)"
    for record in (
        registry.counter("c").inc,
        registry.gauge("g").set,
        registry.gauge("g").dec,
        registry.histogram("h").observe,
        registry.histogram("h").labels(a="b").observe,
    ):
        with pytest.raises(InstrumentError, match=expected):
            record(value)
    assert registry.collect() == []


@pytest.mark.parametrize("value", [-1, -0.5])
def test_counter_increments_must_not_be_negative(registry, value):
    with pytest.raises(InstrumentError, match=rf"counter 'c': an increment must be >= 0, got {value}"):
        registry.counter("c").inc(value, route="/")
    assert registry.collect() == []


def test_other_real_numbers_are_converted(registry):
    registry.histogram("h").observe(Fraction(1, 4))
    registry.counter("c").inc(Fraction(3, 2))
    rollups = registry.collect()
    assert only(rollups, "h").sum == 0.25
    assert only(rollups, "c").sum == 1.5


# -- thread safety ----------------------------------------------------------------------------------

THREADS = 8
PER_THREAD = 50_000


def run_threads(target, count: int = THREADS) -> None:
    start = threading.Barrier(count)

    def run(n: int) -> None:
        start.wait()
        target(n)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.mark.usefixtures("busy_switching")
def test_concurrent_increments_are_exact(registry):
    requests = registry.counter("requests_total")
    handle = requests.labels(path="/")

    def work(n: int) -> None:
        for _ in range(PER_THREAD):
            handle.inc()
            requests.inc(path="/")

    run_threads(work)
    rollup = only(registry.collect(), "requests_total")
    assert (rollup.count, rollup.sum) == (2 * THREADS * PER_THREAD, 2.0 * THREADS * PER_THREAD)


@pytest.mark.usefixtures("busy_switching")
def test_concurrent_gauge_deltas_and_observations_are_exact(registry):
    level = registry.gauge("level")
    latency = registry.histogram("latency")
    per_thread = 10_000

    def work(n: int) -> None:
        handle = level.labels()
        for i in range(per_thread):
            handle.inc(2)
            level.dec()
            latency.observe(i % 5)

    run_threads(work)
    rollups = registry.collect()
    assert only(rollups, "level").last == THREADS * per_thread
    assert only(rollups, "level").count == 2 * THREADS * per_thread
    assert (only(rollups, "latency").count, only(rollups, "latency").sum) == (
        THREADS * per_thread,
        THREADS * sum(i % 5 for i in range(per_thread)),
    )


@pytest.mark.usefixtures("busy_switching")
def test_collect_while_recording_never_loses_or_double_counts(registry):
    requests = registry.counter("requests_total")
    latency = registry.histogram("latency")
    per_thread = 10_000
    collected: list[MetricRollup] = []
    stop = threading.Event()

    def collect_until_stopped() -> None:
        while not stop.is_set():
            collected.extend(registry.collect())

    def work(n: int) -> None:
        handle = requests.labels(worker=str(n % 2))
        for i in range(per_thread):
            handle.inc()
            requests.inc(2, worker=str(n % 2))
            latency.observe(i % 3)

    collector = threading.Thread(target=collect_until_stopped)
    collector.start()
    run_threads(work, count=4)
    stop.set()
    collector.join()
    collected.extend(registry.collect())
    counters = [r for r in collected if r.name == "requests_total"]
    histograms = [r for r in collected if r.name == "latency"]
    assert len(counters) > 2, "the collector should have run while the workers recorded"
    assert sum(r.sum for r in counters) == 3 * 4 * per_thread
    assert sum(r.count for r in counters) == 2 * 4 * per_thread
    assert sum(r.count for r in histograms) == 4 * per_thread
    assert sum(r.sum for r in histograms) == 4 * sum(i % 3 for i in range(per_thread))
    assert sum(LogSketch.from_model(r.sketch).count for r in histograms) == 4 * per_thread


def test_totals_are_cumulative_and_leave_rollups_unchanged(registry):
    requests = registry.counter("requests_total")
    level = registry.gauge("level")
    latency = registry.histogram("latency")
    registry.gauge("never_set")
    requests.inc()
    requests.inc(2.5, route="/a")
    level.set(7)
    for value in (1, 2, 4):
        latency.observe(value)
    first = dict((info.name, totals) for info, totals in registry.totals())
    assert [t.value for t in first["requests_total"]] == [1, 2.5]
    assert first["level"][0].value == 7
    assert first["never_set"] == []
    assert (first["latency"][0].count, first["latency"][0].sum) == (3, 7)
    rollups = {(r.name, tuple(r.labels.items())): r for r in registry.collect()}
    assert (rollups["requests_total", ()].sum, rollups["requests_total", ()].count) == (1, 1)
    assert rollups["latency", ()].count == 3
    requests.inc()
    latency.observe(8)
    later = dict((info.name, totals) for info, totals in registry.totals())
    assert later["requests_total"][0].value == 2  # across the collect: a running total
    assert (later["latency"][0].count, later["latency"][0].sum, later["latency"][0].value) == (4, 15, 8)
    assert later["latency"][0].sketch.quantile(1.0) == pytest.approx(8, rel=0.01)
    assert registry.collect()[0].sum == 1  # the totals read did not eat the interval's increase


def test_totals_while_recording_and_collecting_count_every_increment(registry):
    requests = registry.counter("requests_total")
    latency = registry.histogram("latency")
    per_thread = 5_000
    collected: list[MetricRollup] = []
    stop = threading.Event()

    def read_until_stopped() -> None:
        while not stop.is_set():
            registry.totals()
            collected.extend(registry.collect())

    def work(n: int) -> None:
        for i in range(per_thread):
            requests.inc()
            latency.observe(i % 3)

    reader = threading.Thread(target=read_until_stopped)
    reader.start()
    run_threads(work, count=4)
    stop.set()
    reader.join()
    collected.extend(registry.collect())
    totals = dict((info.name, series) for info, series in registry.totals())
    assert totals["requests_total"][0].value == 4 * per_thread
    assert sum(r.sum for r in collected if r.name == "requests_total") == 4 * per_thread
    assert totals["latency"][0].count == totals["latency"][0].sketch.count == 4 * per_thread


# -- percentiles ------------------------------------------------------------------------------------

QUANTILES = (0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0)


def _bimodal(rng: random.Random) -> float:
    return rng.gauss(0.010, 0.002) if rng.random() < 0.7 else rng.gauss(0.500, 0.050)


DISTRIBUTIONS = {
    "uniform": lambda rng: rng.uniform(0.001, 10.0),
    "lognormal": lambda rng: rng.lognormvariate(-3.0, 1.5),
    "bimodal": _bimodal,
    "constant": lambda rng: 0.125,
    "1e-6..1e6": lambda rng: 10 ** rng.uniform(-6, 6),
    "mixed signs": lambda rng: rng.choice((-1, 0, 1)) * rng.expovariate(0.01),
}


@pytest.mark.parametrize("distribution", sorted(DISTRIBUTIONS))
def test_histogram_percentiles_are_within_one_percent(registry, distribution):
    rng = random.Random(distribution)
    values = [DISTRIBUTIONS[distribution](rng) for _ in range(20_000)]
    latency = registry.histogram("latency")
    for value in values:
        latency.observe(value)
    sketch = LogSketch.from_model(only(registry.collect(), "latency").sketch)
    exact = sorted(values)
    for q in QUANTILES:
        truth = exact[int(q * (len(exact) - 1))]
        assert sketch.quantile(q) == pytest.approx(truth, rel=0.01, abs=0.0), f"p{q * 100:g}"


finite_floats = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300)


@given(st.lists(st.one_of(finite_floats, st.integers(-(10**6), 10**6)), max_size=300))
def test_sketch_add_many_equals_add_one_by_one(values):
    one_by_one = LogSketch()
    for value in values:
        one_by_one.add(value)
    batched = LogSketch()
    batched.add_many(values)
    assert batched.to_model() == one_by_one.to_model()
    assert batched.count == one_by_one.count == len(values)
