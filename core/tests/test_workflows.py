"""Workflow executions and steps: context managers, decorators, the engine API, traces, logs, metrics, storage."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tocsin.clock import VirtualClock
from tocsin.errors import InstrumentError, QueryError
from tocsin.models import LabelMatcher
from tocsin.storage.protocol import ExecutionQuery, LogQuery, MetricQuery
from tocsin.testing import make_monitor
from tocsin.workflows.service import WorkflowMonitor

START = 1_700_000_000 * 10**9


@pytest.fixture
async def clock():
    return VirtualClock(START)


@pytest.fixture
async def monitor(clock):
    instance = make_monitor(clock=clock)
    async with instance:
        yield instance


@pytest.fixture
async def workflows(monitor):
    instance = WorkflowMonitor(monitor)
    await instance.start()
    yield instance
    await instance.stop()


def later(clock: VirtualClock, seconds: float) -> None:
    clock.set(clock.now_ns() + round(seconds * 1e9))


async def test_an_execution_is_a_trace_with_steps_stored_and_logs_that_carry_it(monitor, workflows, clock):
    with workflows.execution("etl", params={"day": "2024-05-01"}) as run:
        assert workflows.current() is run
        with run.step("extract"):
            monitor.log.info("reading", rows=3)
            later(clock, 2)
        with run.step("load"):
            later(clock, 1)
    assert workflows.current() is None
    execution, steps = await workflows.get(run.id)
    assert (execution.name, execution.status, execution.params) == ("etl", "succeeded", {"day": "2024-05-01"})
    assert execution.id == execution.trace_id == run.trace_id
    assert execution.ended_ns - execution.started_ns == 3 * 10**9
    assert [(s.name, s.status, s.ended_ns - s.started_ns) for s in steps] == [
        ("extract", "succeeded", 2 * 10**9), ("load", "succeeded", 10**9)]

    await monitor.flush()
    spans = {span.name: span for span in await monitor.storage.get_trace(run.trace_id)}
    assert spans["etl"].parent_span_id is None and spans["etl"].span_id == execution.span_id
    assert spans["etl"].attributes["workflow.param.day"] == "2024-05-01"
    assert spans["extract"].parent_span_id == spans["load"].parent_span_id == execution.span_id
    assert steps[0].span_id == spans["extract"].span_id
    [hit] = (await monitor.storage.search_logs(LogQuery(execution_id=run.id))).items
    assert (hit.record.message, hit.record.step, hit.record.trace_id) == ("reading", "extract", run.trace_id)
    assert hit.record.span_id == spans["extract"].span_id


async def test_nested_steps_nest_their_spans_and_their_context(monitor, workflows):
    with workflows.execution("etl") as run, run.step("load") as load:
        with run.step("load.partition") as part:
            monitor.log.info("inner")
        monitor.log.info("outer again")
    await monitor.flush()
    assert part.span.context.span_id != load.span.context.span_id
    spans = {span.name: span for span in await monitor.storage.get_trace(run.trace_id)}
    assert spans["load.partition"].parent_span_id == spans["load"].span_id
    logs = {h.record.message: h.record.step for h in (await monitor.storage.search_logs(LogQuery())).items}
    assert logs == {"inner": "load.partition", "outer again": "load"}


async def test_a_failing_step_fails_the_execution_and_keeps_message_and_traceback(monitor, workflows):
    events = monitor.events.subscribe(["workflows"])

    def transform(rows):
        raise ValueError(f"bad row {rows[1]!r}")

    def etl():
        with workflows.execution("etl") as run:
            with run.step("extract"):
                rows = ["a", "b"]
            with run.step("transform"), run.step("transform.parse"):
                transform(rows)
            with run.step("never"):
                pass

    with pytest.raises(ValueError, match="bad row"):
        etl()
    [run] = (await workflows.executions(name="etl")).items
    execution, steps = await workflows.get(run.id)
    assert execution.status == "failed"
    assert execution.error == "step 'transform.parse' failed: ValueError: bad row 'b'"
    by_name = {step.name: step for step in steps}
    assert set(by_name) == {"extract", "transform", "transform.parse"}
    assert by_name["extract"].status == "succeeded" and by_name["extract"].error is None
    for name in ("transform", "transform.parse"):
        assert by_name[name].status == "failed" and by_name[name].error == "ValueError: bad row 'b'"
        assert by_name[name].traceback.startswith("Traceback") and "in transform" in by_name[name].traceback
    types = [event.type for event in events.drain()]
    assert types == ["started", "step_failed", "step_failed", "failed"]

    await monitor.flush()
    errors = (await monitor.storage.search_logs(LogQuery(level="error", execution_id=run.id))).items
    assert {hit.record.step for hit in errors} == {"transform", "transform.parse", None}
    root = next(s for s in await monitor.storage.get_trace(run.trace_id) if s.parent_span_id is None)
    assert root.status == "error" and root.events[0].attributes["exception.type"] == "ValueError"


async def test_a_caught_step_failure_leaves_the_execution_succeeded(workflows, clock):
    with workflows.execution("etl") as run:
        try:
            with run.step("optional"):
                raise KeyError("cache")
        except KeyError:
            pass
        later(clock, 1)
        with run.step("explicit") as step:
            step.fail("upstream said no")
    execution, steps = await workflows.get(run.id)
    assert execution.status == "succeeded"
    assert [(s.name, s.status, s.error) for s in steps] == [
        ("optional", "failed", "KeyError: 'cache'"), ("explicit", "failed", "upstream said no")]


async def test_cancellation_is_its_own_status(workflows):
    async def job():
        async with workflows.execution("sync-job") as run, run.step("wait"):
            await asyncio.sleep(3600)

    task = asyncio.create_task(job())
    await asyncio.sleep(0.01)
    [run] = workflows.active()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    execution, [step] = await workflows.get(run.id)
    assert (execution.status, step.status) == ("cancelled", "cancelled")
    assert execution.error == "step 'wait' failed: CancelledError"


async def test_async_steps_run_concurrently_with_their_own_context(monitor, workflows):
    async with workflows.execution("fanout") as run:
        async def fetch(source: str) -> None:
            async with run.step(f"fetch.{source}"):
                await asyncio.sleep(0.001)
                monitor.log.info("fetched", source=source)

        await asyncio.gather(*(fetch(source) for source in ("a", "b", "c")))
    await monitor.flush()
    logs = {h.record.attributes["source"]: h.record.step for h in (await monitor.storage.search_logs(LogQuery())).items}
    assert logs == {"a": "fetch.a", "b": "fetch.b", "c": "fetch.c"}
    _, steps = await workflows.get(run.id)
    assert sorted(step.name for step in steps) == ["fetch.a", "fetch.b", "fetch.c"]


async def test_decorators_make_executions_and_steps(workflows, monitor):
    @workflows.step("double")
    def double(x: int) -> int:
        return 2 * x

    @workflows.step("adouble")
    async def adouble(x: int) -> int:
        return 2 * x

    @workflows.execution("pipeline", params={"source": "test"})
    def pipeline(x: int) -> int:
        return double(x) + 1

    @workflows.execution("apipeline")
    async def apipeline(x: int) -> int:
        return await adouble(x) + 1

    assert pipeline(3) == 7 and pipeline(4) == 9
    assert await apipeline(5) == 11
    assert double(10) == 20  # outside any execution the step just runs, untracked
    page = await workflows.executions(name="pipeline")
    assert page.total == 2 and {e.params["source"] for e in page.items} == {"test"}
    for execution in page.items:
        _, steps = await workflows.get(execution.id)
        assert [(s.name, s.status) for s in steps] == [("double", "succeeded")]
    [async_run] = (await workflows.executions(name="apipeline")).items
    assert [s.name for s in (await workflows.get(async_run.id))[1]] == ["adouble"]
    with pytest.raises(InstrumentError, match="fixed id cannot decorate"):
        workflows.execution("x", execution_id="run-1")(pipeline)


async def test_the_engine_event_api(workflows, monitor, clock):
    events = monitor.events.subscribe(["workflows"])
    run_id = workflows.started("nightly", execution_id="airflow-123", params={"dag": "nightly"})
    assert run_id == "airflow-123"
    workflows.step_started(run_id, "extract")
    later(clock, 5)
    workflows.step_completed(run_id, "extract")
    workflows.step_started(run_id, "load")
    workflows.step_failed(run_id, "load", "psycopg.OperationalError: timeout", traceback="Traceback (engine)...")
    workflows.step_started(run_id, "notify")
    later(clock, 1)
    workflows.failed(run_id, "load failed")
    execution, steps = await workflows.get(run_id)
    assert (execution.status, execution.error, execution.params) == ("failed", "load failed", {"dag": "nightly"})
    assert [(s.name, s.status) for s in steps] == [("extract", "succeeded"), ("load", "failed"),
                                                   ("notify", "cancelled")]
    assert steps[0].ended_ns - steps[0].started_ns == 5 * 10**9
    assert steps[1].traceback == "Traceback (engine)..." and steps[1].error.startswith("psycopg")
    assert [e.type for e in events.drain()] == ["started", "step_failed", "failed"]

    with pytest.raises(InstrumentError, match="no running workflow execution 'airflow-123'"):
        workflows.completed(run_id)
    other = workflows.started("nightly")
    with pytest.raises(InstrumentError, match="already running"):
        workflows.started("nightly", execution_id=other)
    with pytest.raises(InstrumentError, match="has no running step 'load'"):
        workflows.step_completed(other, "load")
    workflows.step_started(other, "load")
    with pytest.raises(InstrumentError, match=r"step 'load' of execution .* is already running"):
        workflows.step_started(other, "load")
    workflows.cancelled(other, "operator stopped it")
    assert (await workflows.get(other))[0].status == "cancelled"


async def test_an_execution_inside_a_request_span_starts_its_own_linked_trace(monitor, workflows):
    with monitor.tracer.span("POST /runs") as request, workflows.execution("etl") as run:
        pass
    assert run.trace_id != request.trace_id
    await monitor.flush()
    root = next(s for s in await monitor.storage.get_trace(run.trace_id) if s.parent_span_id is None)
    assert [(link.trace_id, link.span_id) for link in root.links] == [(request.trace_id, request.span_id)]


async def test_metrics_are_recorded_by_themselves(monitor, workflows, clock):
    for fail in (False, False, True):
        try:
            with workflows.execution("etl") as run, run.step("load"):
                later(clock, 2)
                if fail:
                    raise RuntimeError("disk full")
        except RuntimeError:
            pass
    await monitor.flush()

    async def series(name: str, aggregate: str, by: list[str]) -> dict[tuple, float]:
        found = await monitor.storage.query_metrics(MetricQuery(
            name=name, start_ns=0, end_ns=2**62, aggregate=aggregate, by=by,
            matchers=[LabelMatcher(label="workflow", value="etl")]))  # fmt: skip
        return {tuple(s.labels.values()): s.points[0][1] for s in found}

    assert await series("tocsin_workflow_executions_total", "sum", ["status"]) == {("failed",): 1, ("succeeded",): 2}
    assert await series("tocsin_workflow_duration_seconds", "count", ["status"]) == {("failed",): 1,
                                                                                   ("succeeded",): 2}
    assert await series("tocsin_workflow_step_duration_seconds", "max", ["step"]) == {("load",): 2.0}
    assert await series("tocsin_workflow_step_failures_total", "sum", ["step"]) == {("load",): 1}


async def test_stats_against_known_inputs(workflows, clock):
    durations = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]  # seconds; the 3rd and 7th runs fail in "load"
    for i, seconds in enumerate(durations):
        try:
            with workflows.execution("etl") as run:
                with run.step("extract"):
                    later(clock, seconds / 2)
                with run.step("load"):
                    load_started = clock.now_ns()
                    later(clock, seconds / 2)
                    if i in (2, 6):
                        raise OSError("network")
        except OSError:
            pass
        later(clock, 60)
    running = workflows.execution("etl").start()
    stats = await workflows.stats("etl")
    assert (stats.count, stats.succeeded, stats.failed, stats.cancelled) == (10, 8, 2, 0)
    assert stats.success_rate == 0.8
    # quantile q is the value at rank q*(n-1), within the sketch's 1 % relative error
    assert stats.p50 == pytest.approx(5, rel=0.01)
    assert stats.p95 == pytest.approx(9, rel=0.01) and stats.p99 == pytest.approx(9, rel=0.01)
    assert stats.active == 1 and stats.last_run.id == running.id
    extract, load = stats.steps
    assert (extract.name, extract.count, extract.success_rate) == ("extract", 10, 1.0)
    assert (load.name, load.count, load.failed, load.success_rate) == ("load", 10, 2, 0.8)
    assert extract.p50 == pytest.approx(2.5, rel=0.01)
    assert (load.last_status, load.last_run_ns) == ("succeeded", load_started)
    running.succeed()
    assert (await workflows.stats("nothing-ran")).count == 0


async def test_listing_filters_by_name_status_and_time_with_cursors(workflows, clock):
    ids = []
    for i in range(7):
        try:
            with workflows.execution("a" if i % 2 == 0 else "b") as run:
                ids.append(run.id)
                if i == 4:
                    raise ValueError
        except ValueError:
            pass
        later(clock, 10)
    page = await workflows.executions(name="a", limit=2)
    assert page.total == 4 and [e.id for e in page.items] == [ids[6], ids[4]]
    page = await workflows.executions(name="a", limit=2, cursor=page.next_cursor)
    assert [e.id for e in page.items] == [ids[2], ids[0]] and page.next_cursor is None
    assert [e.id for e in (await workflows.executions(status="failed")).items] == [ids[4]]
    window = ExecutionQuery(start_ns=START + 10 * 10**9, end_ns=START + 30 * 10**9)
    assert [e.id for e in (await workflows.executions(window)).items] == [ids[2], ids[1]]


def test_a_sync_app_records_from_threads():
    monitor = make_monitor()
    workflows = WorkflowMonitor(monitor)
    monitor.services.append(workflows)
    with monitor:
        def worker(n: int) -> None:
            for i in range(20):
                with workflows.execution("jobs", params={"worker": n, "i": i}) as run, run.step("work"):
                    pass

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert workflows.active() == []
    page = asyncio.run(monitor.storage.list_executions(ExecutionQuery(name="jobs", status="succeeded", limit=1)))
    assert page.total == 80  # written by the writer task and the final flush on close


async def test_a_failing_storage_is_retried(monitor, workflows):
    storage = monitor.storage
    original = storage.save_step
    failures = []

    async def flaky(step):
        if len(failures) < 2:
            failures.append(step)
            raise OSError("disk on fire")
        await original(step)

    storage.save_step = flaky
    with workflows.execution("etl") as run, run.step("load"):
        pass
    await workflows.flush()
    assert (await storage.get_execution(run.id))[1] == []
    await workflows.flush()
    await workflows.flush()
    [step] = (await storage.get_execution(run.id))[1]
    assert step.status == "succeeded"


async def test_misuse_is_a_clear_error(workflows):
    with pytest.raises(InstrumentError, match="workflow name must be a non-empty str"):
        workflows.execution("")
    with workflows.execution("etl") as run:
        pass
    with pytest.raises(InstrumentError, match="already started"), run:
        pass
    with pytest.raises(InstrumentError, match="is not running"), run.step("late"):
        pass
    with pytest.raises(QueryError, match="not both"):
        await workflows.executions(ExecutionQuery(), name="etl")


async def test_monitor_flush_writes_every_workflow_execution_and_step(monitor):
    for i in range(200):
        with monitor.workflows.execution("batch", params={"i": i}) as run, run.step("only"):
            pass
    await monitor.flush()  # the monitor's flush, not workflows.flush(): everything recorded so far is stored
    page = await monitor.storage.list_executions(ExecutionQuery(name="batch", limit=1000))
    assert len(page.items) == 200
    _, steps = await monitor.storage.get_execution(run.id)
    assert [step.name for step in steps] == ["only"]
