"""One `/metrics` exposition: tocsin-prometheus beside prometheus_client's `generate_latest`, same series.

    uv run pytest benchmarks/test_prometheus_bench.py --benchmark-only

Both registries hold COUNTERS counter series and HISTOGRAMS histogram series of OBSERVATIONS values each;
tocsin writes histograms as summaries (four quantiles from its sketch), prometheus_client as 11 default
buckets. A round is one full text 0.0.4 exposition.
"""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import Counter as PromCounter
from prometheus_client import Histogram as PromHistogram
from tocsin_prometheus import exposition

from tocsin.testing import make_monitor

COUNTERS, HISTOGRAMS, OBSERVATIONS = 1000, 100, 1000
_rng = random.Random(7)
VALUES = [_rng.lognormvariate(-3.0, 1.5) for _ in range(OBSERVATIONS)]


@pytest.fixture(scope="module")
def monitor():
    monitor = make_monitor()
    requests = monitor.metrics.counter("requests_total", "Requests")
    latency = monitor.metrics.histogram("latency_seconds", "Latency", unit="s")
    for i in range(COUNTERS):
        requests.inc(i, route=f"/r{i}")
    for i in range(HISTOGRAMS):
        series = latency.labels(route=f"/r{i}")
        for value in VALUES:
            series.observe(value)
    return monitor


@pytest.fixture(scope="module")
def prom():
    registry = CollectorRegistry()
    requests = PromCounter("requests", "Requests", ["route"], registry=registry)
    latency = PromHistogram("latency_seconds", "Latency", ["route"], registry=registry)
    for i in range(COUNTERS):
        requests.labels(route=f"/r{i}").inc(i)
    for i in range(HISTOGRAMS):
        series = latency.labels(route=f"/r{i}")
        for value in VALUES:
            series.observe(value)
    return registry


@pytest.mark.benchmark(group="exposition")
def test_tocsin_exposition(benchmark, monitor):
    body = benchmark(exposition, monitor)
    assert body.count(b"requests_total{") == COUNTERS


@pytest.mark.benchmark(group="exposition")
def test_prometheus_client_generate_latest(benchmark, prom):
    body = benchmark(generate_latest, prom)
    assert body.count(b"requests_total{") == COUNTERS
