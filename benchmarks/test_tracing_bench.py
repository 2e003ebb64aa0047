"""Tracing per span: tocsin's Tracer side by side with opentelemetry-sdk (PERFORMANCE.md §2).

Every benchmark times rounds of SPANS spans, so 1 ms per round reads as 1 µs per span. The OTel peer is
`tracer.start_as_current_span` on a TracerProvider with a BatchSpanProcessor and an exporter that does
nothing. tocsin's buffer is drained (and every span converted to `models.Span`, as the flusher would)
whenever it reaches its 512-span batch, inside the timed code. At the end of the module the tocsin/OTel
ratios of the medians (and of the minimums, steadier on a shared box) are printed; floors (a contextvar
set+reset, an empty call) give the box's speed at the time.

Run: uv run pytest benchmarks/test_tracing_bench.py --benchmark-only
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable

import pytest
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBasedTraceIdRatio

from tocsin.signals.buffer import BoundedBuffer
from tocsin.signals.sampling import AlwaysOff, Sampler, make_sampler
from tocsin.signals.tracing import Tracer

SPANS = 1_000
ROUNDS = 30
LOOP = range(SPANS)
ATTRS = {"http.request.method": "GET", "http.response.status_code": 200, "user": "ada"}

PLAIN = "span: plain (per 1000 spans)"
RICH = "span: 3 set_attribute + 1 event (per 1000 spans)"
CTOR = "span: 3 attributes at start + 1 event (per 1000 spans)"
PAIR = "span: parent + child (per 1000 pairs)"
UNSAMPLED = "span: unsampled (per 1000 spans)"
RATIO = "span: parent-based ratio 0.1 (per 1000 spans)"
FLOOR = "floor (per 1000 ops)"

results: dict[tuple[str, str], tuple[float, float]] = {}  # (group, impl) -> (median, min) per round


def tocsin_tracer(sampler: Sampler | None = None) -> Tracer:
    """A tracer whose buffer is drained into models.Span each time a batch of 512 is ready."""
    buffer: BoundedBuffer = BoundedBuffer("spans", 2048, batch_size=512)
    tracer = Tracer(service="bench", buffer=buffer, sampler=sampler)
    buffer.on_batch = lambda: tracer.drain(time.time_ns())
    return tracer


def per_span(benchmark, impl: str, target: Callable[[], None]) -> None:
    """Time ROUNDS rounds of `target` (SPANS spans each) and keep median and min for the ratio summary."""
    benchmark.extra_info["spans_per_round"] = SPANS
    benchmark.pedantic(target, rounds=ROUNDS, warmup_rounds=2)
    if benchmark.stats is not None:
        results[(benchmark.group, impl)] = (benchmark.stats.stats.median, benchmark.stats.stats.min)


@pytest.fixture(scope="module", autouse=True)
def ratio_summary(request):
    """After the module, print µs per span (median) for tocsin and OTel and their ratios (median, min)."""
    yield
    if not results:
        return
    lines = ["", f"{'tracing: tocsin vs opentelemetry-sdk':<56} {'tocsin':>9} {'otel':>9}  ratio median / min"]
    for group in dict.fromkeys(group for group, _ in results):
        ours, theirs = results.get((group, "tocsin")), results.get((group, "otel"))
        if ours is not None and theirs is not None:
            lines.append(
                f"  {group:<54} {ours[0] * 1e3:6.2f} µs {theirs[0] * 1e3:6.2f} µs  "
                f"{ours[0] / theirs[0]:.3f} / {ours[1] / theirs[1]:.3f}"
            )
    lines += [
        f"  {impl:<54} {median * 1e6:6.0f} ns (min {low * 1e6:.0f} ns)"
        for (group, impl), (median, low) in results.items()
        if group == FLOOR
    ]
    plugins = request.config.pluginmanager
    with plugins.get_plugin("capturemanager").global_and_fixture_disabled():
        for line in lines:
            plugins.get_plugin("terminalreporter").write_line(line)


# -- recorded spans ----------------------------------------------------------------------------------


@pytest.mark.benchmark(group=PLAIN)
def test_plain_tocsin(benchmark):
    tracer = tocsin_tracer()

    def spans():
        for _ in LOOP:
            with tracer.span("op"):
                pass

    per_span(benchmark, "tocsin", spans)


@pytest.mark.benchmark(group=PLAIN)
def test_plain_otel(benchmark, otel_tracer):
    tracer = otel_tracer()

    def spans():
        for _ in LOOP:
            with tracer.start_as_current_span("op"):
                pass

    per_span(benchmark, "otel", spans)


@pytest.mark.benchmark(group=RICH)
def test_rich_tocsin(benchmark):
    tracer = tocsin_tracer()

    def spans():
        for _ in LOOP:
            with tracer.span("op") as span:
                span.set_attribute("http.request.method", "GET")
                span.set_attribute("http.response.status_code", 200)
                span.set_attribute("user", "ada")
                span.add_event("cache miss")

    per_span(benchmark, "tocsin", spans)


@pytest.mark.benchmark(group=RICH)
def test_rich_otel(benchmark, otel_tracer):
    tracer = otel_tracer()

    def spans():
        for _ in LOOP:
            with tracer.start_as_current_span("op") as span:
                span.set_attribute("http.request.method", "GET")
                span.set_attribute("http.response.status_code", 200)
                span.set_attribute("user", "ada")
                span.add_event("cache miss")

    per_span(benchmark, "otel", spans)


@pytest.mark.benchmark(group=CTOR)
def test_ctor_attributes_tocsin(benchmark):
    tracer = tocsin_tracer()

    def spans():
        for _ in LOOP:
            with tracer.span("op", attributes=ATTRS) as span:
                span.add_event("cache miss")

    per_span(benchmark, "tocsin", spans)


@pytest.mark.benchmark(group=CTOR)
def test_ctor_attributes_otel(benchmark, otel_tracer):
    tracer = otel_tracer()

    def spans():
        for _ in LOOP:
            with tracer.start_as_current_span("op", attributes=ATTRS) as span:
                span.add_event("cache miss")

    per_span(benchmark, "otel", spans)


@pytest.mark.benchmark(group=PAIR)
def test_parent_child_tocsin(benchmark):
    tracer = tocsin_tracer()

    def pairs():
        for _ in LOOP:
            with tracer.span("parent"), tracer.span("child"):
                pass

    per_span(benchmark, "tocsin", pairs)


@pytest.mark.benchmark(group=PAIR)
def test_parent_child_otel(benchmark, otel_tracer):
    tracer = otel_tracer()

    def pairs():
        for _ in LOOP:
            with tracer.start_as_current_span("parent"), tracer.start_as_current_span("child"):
                pass

    per_span(benchmark, "otel", pairs)


# -- sampled out -------------------------------------------------------------------------------------


@pytest.mark.benchmark(group=UNSAMPLED)
def test_unsampled_tocsin(benchmark):
    tracer = tocsin_tracer(AlwaysOff())

    def spans():
        for _ in LOOP:
            with tracer.span("op"):
                pass

    per_span(benchmark, "tocsin", spans)


@pytest.mark.benchmark(group=UNSAMPLED)
def test_unsampled_otel(benchmark, otel_tracer):
    tracer = otel_tracer(ALWAYS_OFF)

    def spans():
        for _ in LOOP:
            with tracer.start_as_current_span("op"):
                pass

    per_span(benchmark, "otel", spans)


@pytest.mark.benchmark(group=RATIO)
def test_ratio_tocsin(benchmark):
    tracer = tocsin_tracer(make_sampler("parent_based", 0.1))

    def spans():
        for _ in LOOP:
            with tracer.span("op"):
                pass

    per_span(benchmark, "tocsin", spans)


@pytest.mark.benchmark(group=RATIO)
def test_ratio_otel(benchmark, otel_tracer):
    tracer = otel_tracer(ParentBasedTraceIdRatio(0.1))

    def spans():
        for _ in LOOP:
            with tracer.start_as_current_span("op"):
                pass

    per_span(benchmark, "otel", spans)


# -- floors ------------------------------------------------------------------------------------------


@pytest.mark.benchmark(group=FLOOR)
def test_floor_contextvar_set_reset(benchmark):
    var: contextvars.ContextVar[int | None] = contextvars.ContextVar("floor", default=None)

    def ops():
        for _ in LOOP:
            var.reset(var.set(1))

    per_span(benchmark, "floor: contextvar set + reset", ops)


@pytest.mark.benchmark(group=FLOOR)
def test_floor_empty_call(benchmark):
    def nothing() -> None:
        pass

    def ops():
        for _ in LOOP:
            nothing()

    per_span(benchmark, "floor: empty function call", ops)
