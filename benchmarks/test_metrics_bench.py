"""Metric recording hot paths: tocsin beside prometheus_client and opentelemetry-sdk, in one run.

    uv run pytest benchmarks/test_metrics_bench.py --benchmark-only

Every recording case makes OPS calls per round, so the reported time per round in µs reads directly as
ns per call; the loop overhead is the same for every case. tocsin folds pending values into its sketch
every FOLD_AT (256) calls, so each round includes that amortised work. OpenTelemetry runs with an
InMemoryMetricReader attached, because the SDK only aggregates when a reader exists. The sketch group
adds SKETCH_VALUES values per round (read µs/round ÷ 10 as ns per value).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from ddsketch import DDSketch
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge as PromGauge
from prometheus_client import Histogram as PromHistogram

from tocsin.signals.metrics import MetricsRegistry
from tocsin.signals.sketch import LogSketch

OPS = 1000
SKETCH_VALUES = 10_000
_rng = random.Random(42)
VALUES = [_rng.lognormvariate(-3.0, 1.5) for _ in range(OPS)]  # latencies in seconds
SKETCH_INPUT = [_rng.lognormvariate(-3.0, 1.5) for _ in range(SKETCH_VALUES)]
ATTRS = {"a": "x", "b": "y"}
CALLS = range(OPS)


@pytest.fixture(scope="module")
def tocsin_registry() -> Iterator[MetricsRegistry]:
    registry = MetricsRegistry()
    yield registry
    registry.collect()


@pytest.fixture(scope="module")
def prom() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture(scope="module")
def otel() -> Iterator[object]:
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    yield provider.get_meter("benchmarks")
    provider.shutdown()


# -- counter: a cached, bound handle ----------------------------------------------------------------


@pytest.mark.benchmark(group="counter: bound handle inc()")
def test_floor_dict_increment(benchmark):
    counts = {"k": 0}

    def run() -> None:
        for _ in CALLS:
            counts["k"] += 1

    benchmark(run)


@pytest.mark.benchmark(group="counter: bound handle inc()")
def test_tocsin_bound_inc(benchmark, tocsin_registry):
    inc = tocsin_registry.counter("bound_total").labels(a="x", b="y").inc
    benchmark(_call_n, inc)


@pytest.mark.benchmark(group="counter: bound handle inc()")
def test_prometheus_child_inc(benchmark, prom):
    inc = PromCounter("bound", "doc", ["a", "b"], registry=prom).labels(a="x", b="y").inc
    benchmark(_call_n, inc)


@pytest.mark.benchmark(group="counter: bound handle inc()")
def test_otel_counter_add_with_attributes(benchmark, otel):
    _otel_counter_add(benchmark, otel, "bound")


# -- counter: labels resolved on every call ---------------------------------------------------------


@pytest.mark.benchmark(group="counter: inc with 2 labels")
def test_tocsin_inc_with_labels(benchmark, tocsin_registry):
    counter = tocsin_registry.counter("labelled_total")

    def run() -> None:
        for _ in CALLS:
            counter.inc(a="x", b="y")

    benchmark(run)


@pytest.mark.benchmark(group="counter: inc with 2 labels")
def test_prometheus_labels_inc(benchmark, prom):
    counter = PromCounter("labelled", "doc", ["a", "b"], registry=prom)

    def run() -> None:
        for _ in CALLS:
            counter.labels(a="x", b="y").inc()

    benchmark(run)


@pytest.mark.benchmark(group="counter: inc with 2 labels")
def test_otel_counter_add_with_2_attributes(benchmark, otel):
    _otel_counter_add(benchmark, otel, "labelled")


# -- histogram: no labels ---------------------------------------------------------------------------


@pytest.mark.benchmark(group="histogram: observe")
def test_tocsin_histogram_observe(benchmark, tocsin_registry):
    benchmark(_observe_each, tocsin_registry.histogram("plain_seconds").observe)


@pytest.mark.benchmark(group="histogram: observe")
def test_tocsin_bound_histogram_observe(benchmark, tocsin_registry):
    benchmark(_observe_each, tocsin_registry.histogram("bound_seconds").labels(a="x", b="y").observe)


@pytest.mark.benchmark(group="histogram: observe")
def test_prometheus_histogram_observe(benchmark, prom):
    benchmark(_observe_each, PromHistogram("plain_seconds", "doc", registry=prom).observe)


@pytest.mark.benchmark(group="histogram: observe")
def test_otel_histogram_record_with_attributes(benchmark, otel):
    _otel_histogram_record(benchmark, otel, "plain")


# -- histogram: labels resolved on every call -------------------------------------------------------


@pytest.mark.benchmark(group="histogram: observe with 2 labels")
def test_tocsin_histogram_observe_with_labels(benchmark, tocsin_registry):
    observe = tocsin_registry.histogram("labelled_seconds").observe

    def run() -> None:
        for value in VALUES:
            observe(value, a="x", b="y")

    benchmark(run)


@pytest.mark.benchmark(group="histogram: observe with 2 labels")
def test_prometheus_histogram_labels_observe(benchmark, prom):
    histogram = PromHistogram("labelled_seconds", "doc", ["a", "b"], registry=prom)

    def run() -> None:
        for value in VALUES:
            histogram.labels(a="x", b="y").observe(value)

    benchmark(run)


@pytest.mark.benchmark(group="histogram: observe with 2 labels")
def test_otel_histogram_record_with_2_attributes(benchmark, otel):
    _otel_histogram_record(benchmark, otel, "labelled")


# -- gauge ------------------------------------------------------------------------------------------


@pytest.mark.benchmark(group="gauge: set")
def test_tocsin_gauge_set(benchmark, tocsin_registry):
    benchmark(_observe_each, tocsin_registry.gauge("level").set)


@pytest.mark.benchmark(group="gauge: set")
def test_tocsin_bound_gauge_set(benchmark, tocsin_registry):
    benchmark(_observe_each, tocsin_registry.gauge("bound_level").labels(a="x", b="y").set)


@pytest.mark.benchmark(group="gauge: set")
def test_prometheus_gauge_set(benchmark, prom):
    benchmark(_observe_each, PromGauge("level", "doc", registry=prom).set)


@pytest.mark.benchmark(group="gauge: set")
def test_otel_gauge_set_with_attributes(benchmark, otel):
    gauge = otel.create_gauge("level")

    def run() -> None:
        for value in VALUES:
            gauge.set(value, ATTRS)

    benchmark(run)


# -- sketches: 1% relative error, 10k lognormal values per round ------------------------------------


@pytest.mark.benchmark(group="sketch: add 10k values")
def test_logsketch_add(benchmark):
    def run() -> LogSketch:
        sketch = LogSketch()
        for value in SKETCH_INPUT:
            sketch.add(value)
        return sketch

    benchmark(run)


@pytest.mark.benchmark(group="sketch: add 10k values")
def test_logsketch_add_many(benchmark):
    def run() -> LogSketch:
        sketch = LogSketch()
        sketch.add_many(SKETCH_INPUT)
        return sketch

    benchmark(run)


@pytest.mark.benchmark(group="sketch: add 10k values")
def test_ddsketch_add(benchmark):
    def run() -> DDSketch:
        sketch = DDSketch(relative_accuracy=0.01)
        for value in SKETCH_INPUT:
            sketch.add(value)
        return sketch

    benchmark(run)


@pytest.mark.benchmark(group="sketch: p50, p95, p99 of 10k values")
def test_logsketch_quantiles(benchmark):
    sketch = LogSketch()
    sketch.add_many(SKETCH_INPUT)
    benchmark(lambda: [sketch.quantile(q) for q in (0.5, 0.95, 0.99)])


@pytest.mark.benchmark(group="sketch: p50, p95, p99 of 10k values")
def test_ddsketch_quantiles(benchmark):
    sketch = DDSketch(relative_accuracy=0.01)
    for value in SKETCH_INPUT:
        sketch.add(value)
    benchmark(lambda: [sketch.get_quantile_value(q) for q in (0.5, 0.95, 0.99)])


# -- helpers ----------------------------------------------------------------------------------------


def _call_n(record) -> None:
    for _ in CALLS:
        record()


def _observe_each(record) -> None:
    for value in VALUES:
        record(value)


def _otel_counter_add(benchmark, meter, name: str) -> None:
    add = meter.create_counter(name).add

    def run() -> None:
        for _ in CALLS:
            add(1, ATTRS)

    benchmark(run)


def _otel_histogram_record(benchmark, meter, name: str) -> None:
    record = meter.create_histogram(name).record

    def run() -> None:
        for value in VALUES:
            record(value, ATTRS)

    benchmark(run)
