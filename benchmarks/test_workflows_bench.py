"""Workflow overhead per step: `with run.step(...)` side by side with an opentelemetry-sdk parent/child span pair.

The goal (issue 8) is a workflow step costing at most 0.3x an OTel parent + child span pair. Every benchmark
times rounds of STEPS operations, so 1 ms per round reads as 1 µs per operation. The OTel peer is
`start_as_current_span` twice, nested, on a TracerProvider with a BatchSpanProcessor and an exporter that
does nothing. On the tocsin side a step is everything the step records: its child span, the execution
context for logs, the step-duration histogram, and the queued step record; the span buffer and the
workflow buffer are drained into `models.Span` / `WorkflowStep` records whenever a batch is ready, inside
the timed code, as the flusher and the writer would. A whole execution with one step (root span, events,
execution metrics and record) is timed too. At the end the ratios of the medians (and of the minimums,
steadier on a shared box) are printed.

Run: uv run pytest benchmarks/test_workflows_bench.py --benchmark-only
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tocsin.testing import make_monitor
from tocsin.workflows.service import WorkflowMonitor

STEPS = 1_000
ROUNDS = 30
LOOP = range(STEPS)

STEP = "workflow step vs OTel parent + child (per 1000)"
EXECUTION = "execution with one step vs OTel parent + child (per 1000)"

results: dict[tuple[str, str], tuple[float, float]] = {}  # (group, impl) -> (median, min) per round


@pytest.fixture
def workflows():
    """A WorkflowMonitor on an unstarted monitor whose span and workflow buffers are drained at each batch."""
    monitor = make_monitor()
    monitor.span_buffer.on_batch = lambda: monitor.tracer.drain(time.time_ns())
    instance = WorkflowMonitor(monitor)
    instance.buffer.on_batch = instance.drain
    return instance


def timed(benchmark, impl: str, target: Callable[[], None]) -> None:
    """Time ROUNDS rounds of `target` and keep median and min for the ratio summary."""
    benchmark.extra_info["operations_per_round"] = STEPS
    benchmark.pedantic(target, rounds=ROUNDS, warmup_rounds=2)
    if benchmark.stats is not None:
        results[(benchmark.group, impl)] = (benchmark.stats.stats.median, benchmark.stats.stats.min)


@pytest.fixture(scope="module", autouse=True)
def ratio_summary(request):
    """After the module, print µs per operation (median) and the tocsin/OTel ratios (median, min)."""
    yield
    header = f"{'workflows: tocsin vs opentelemetry-sdk span pair':<62} {'tocsin':>9} {'otel':>9}"
    lines = ["", f"{header}  ratio median / min"]
    for group in dict.fromkeys(group for group, _ in results):
        ours, theirs = results.get((group, "tocsin")), results.get((group, "otel"))
        if ours is not None and theirs is not None:
            lines.append(f"  {group:<60} {ours[0] * 1e3:6.2f} µs {theirs[0] * 1e3:6.2f} µs  "
                         f"{ours[0] / theirs[0]:.3f} / {ours[1] / theirs[1]:.3f}")
    plugins = request.config.pluginmanager
    with plugins.get_plugin("capturemanager").global_and_fixture_disabled():
        for line in lines:
            plugins.get_plugin("terminalreporter").write_line(line)


@pytest.mark.benchmark(group=STEP)
def test_step_tocsin(benchmark, workflows):
    with workflows.execution("bench") as run:

        def steps():
            for _ in LOOP:
                with run.step("transform"):
                    pass

        timed(benchmark, "tocsin", steps)


@pytest.mark.benchmark(group=STEP)
def test_step_otel(benchmark, otel_tracer):
    otel_tracer = otel_tracer()
    def pairs():
        for _ in LOOP:
            with otel_tracer.start_as_current_span("parent"), otel_tracer.start_as_current_span("child"):
                pass

    timed(benchmark, "otel", pairs)


@pytest.mark.benchmark(group=EXECUTION)
def test_execution_tocsin(benchmark, workflows):
    def executions():
        for _ in LOOP:
            with workflows.execution("bench") as run, run.step("transform"):
                pass

    timed(benchmark, "tocsin", executions)


@pytest.mark.benchmark(group=EXECUTION)
def test_execution_otel(benchmark, otel_tracer):
    otel_tracer = otel_tracer()
    def pairs():
        for _ in LOOP:
            with otel_tracer.start_as_current_span("parent"), otel_tracer.start_as_current_span("child"):
                pass

    timed(benchmark, "otel", pairs)
