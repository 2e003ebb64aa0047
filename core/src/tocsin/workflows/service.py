"""Workflow monitoring: executions and steps as entities, traces, metrics and stored records at once.

    with monitor.workflows.execution("etl", params={"day": "2024-05-01"}) as run:
        with run.step("extract"):
            ...
        async with run.step("load"):        # async code too; nested steps nest their spans
            ...

Engines that report events instead call `started`, `step_started`, `step_completed`, `step_failed`,
`completed`, `failed` and `cancelled` with the execution id. Runs and steps are written to storage by a
writer task (every `[workflows] flush_interval`, sooner when a batch is full, and on stop); expectations
from `[[workflows.expect]]` or `expect()` are checked every `check_interval` on the monitor's clock.
See docs/workflows.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tocsin.config.schema import ExpectationConfig
from tocsin.errors import ConfigError, ConfigProblem, InstrumentError, QueryError, TocsinError
from tocsin.models import Event, WorkflowExecution, WorkflowStep
from tocsin.signals.buffer import BoundedBuffer, sized_buffer
from tocsin.signals.context import current_execution
from tocsin.storage.batches import BatchWriter, report_outcome
from tocsin.storage.protocol import ExecutionQuery, Page
from tocsin.values import Duration
from tocsin.workflows.runs import Recorder, Run, StepRun
from tocsin.workflows.stats import WorkflowStats, workflow_stats
from tocsin.workflows.watch import Expectation, ExpectationWatcher, WorkflowProblem

if TYPE_CHECKING:
    from tocsin.runtime import Runtime

BATCH = 512

internal_log = logging.getLogger("tocsin")


class WorkflowMonitor:
    """Tracks workflow executions and steps for one monitor, writes them, and watches expectations."""

    def __init__(self, monitor: Runtime) -> None:
        self.monitor = monitor
        cfg = monitor.config.workflows
        self.flush_interval = float(cfg.flush_interval)
        self.check_interval = float(cfg.check_interval)
        self.buffer: BoundedBuffer[Run | StepRun] = sized_buffer(
            "workflows", cfg.buffer_size, cfg.overflow, item_bytes=1024, batch_size=BATCH, on_batch=self._wake,
            on_first_drop=self._buffer_full,
        )  # fmt: skip
        self._recorder = Recorder(monitor, self.buffer)
        self._watcher = ExpectationWatcher(monitor)
        for i, entry in enumerate(cfg.expect):
            try:
                self._watcher.add(Expectation.from_config(entry))
            except ConfigError as error:
                raise ConfigError([ConfigProblem(f"workflows.expect[{i}].name", str(error))]) from None
        self.writer = BatchWriter("workflows")
        self.expectations = ExpectationChecks(self)
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_event: asyncio.Event | None = None
        self._flush_lock: asyncio.Lock | None = None

    # -- recording ------------------------------------------------------------------------------------------

    def execution(
        self, name: str, *, params: Mapping[str, Any] | None = None, execution_id: str | None = None
    ) -> Run:
        """An execution of workflow `name`: `with` / `async with` it, or decorate a function with it.

        The id is the execution's trace id unless `execution_id` is given (an engine's run id, say).
        """
        return Run(self._recorder, name, params, execution_id)

    def step(self, name: str) -> StepRun:
        """A step of whichever execution the code runs in when it is entered; a decorator too."""
        return StepRun(self._recorder, name, None)

    def current(self) -> Run | None:
        """The execution the calling code runs in, if any."""
        context = current_execution.get()
        return None if context is None else self._recorder.active.get(context.execution_id)

    def active(self) -> list[Run]:
        """Executions of this process that are running now, oldest first."""
        return sorted(self._recorder.active.values(), key=lambda run: run.started_ns)

    # -- the explicit event API (engines) --------------------------------------------------------------------

    def started(self, name: str, *, execution_id: str | None = None, params: Mapping[str, Any] | None = None) -> str:
        """An engine started an execution; returns its id (the given one, or a new one)."""
        return Run(self._recorder, name, params, execution_id).start().id

    def step_started(self, execution_id: str, step: str) -> None:
        """A step of a running execution started."""
        self._run(execution_id).start_step(step)

    def step_completed(self, execution_id: str, step: str) -> None:
        """A running step finished well."""
        self._run(execution_id).open_step(step).succeed()

    def step_failed(
        self, execution_id: str, step: str, error: BaseException | str, traceback: str | None = None
    ) -> None:
        """A running step failed, with an exception or a message (and optionally the engine's traceback)."""
        self._run(execution_id).open_step(step).fail(error, traceback)

    def completed(self, execution_id: str) -> None:
        """An execution finished well (steps still running are cancelled)."""
        self._run(execution_id).succeed()

    def failed(self, execution_id: str, error: BaseException | str) -> None:
        """An execution failed."""
        self._run(execution_id).fail(error)

    def cancelled(self, execution_id: str, reason: str = "cancelled") -> None:
        """An execution was cancelled."""
        self._run(execution_id).cancel(reason)

    def _run(self, execution_id: str) -> Run:
        run = self._recorder.active.get(execution_id)
        if run is None:
            raise InstrumentError(f"no running workflow execution {execution_id!r} (report `started` first)")
        return run

    # -- expectations ---------------------------------------------------------------------------------------

    def expect(
        self,
        name: str,
        *,
        max_duration: float | str | None = None,
        step_max_duration: Mapping[str, float | str] | None = None,
        schedule: str | None = None,
        timezone: str = "UTC",
        grace: float | str = 300,
    ) -> None:
        """Watch workflow `name` like a `[[workflows.expect]]` entry; durations are seconds or strings like "5m"."""
        try:
            config = ExpectationConfig(
                name=name,
                max_duration=None if max_duration is None else Duration.parse(max_duration),
                step_max_duration={step: Duration.parse(limit) for step, limit in (step_max_duration or {}).items()},
                schedule=schedule, timezone=timezone, grace=Duration.parse(grace),
            )  # fmt: skip
        except ValueError as error:
            raise ConfigError(f"expectation for workflow {name!r}: {error}") from None
        self._watcher.add(Expectation.from_config(config))

    async def check_expectations(self, now_ns: int | None = None) -> list[Event]:
        """Write what is pending, compare every expectation with storage at `now_ns`, emit and return new events."""
        await self.flush()
        now = self.monitor.clock.now_ns() if now_ns is None else now_ns
        events = await self._watcher.check(self._storage(), now)
        for event in events:
            self.monitor.emit(event)
        return events

    def problems(self) -> list[WorkflowProblem]:
        """Expectations broken as of the last check (stuck executions and steps, missed runs)."""
        return self._watcher.problems()

    # -- writing and reading ----------------------------------------------------------------------------------

    def drain(self) -> list[WorkflowExecution | WorkflowStep]:
        """Take every run and step waiting to be written, as the records storage keeps."""
        records: list[WorkflowExecution | WorkflowStep] = []
        for item in self.buffer.drain():
            item._queued = False  # before the snapshot: an end after this point queues the item again
            records.append(item.to_model())
        return records

    async def flush(self) -> None:
        """Write every pending run and step (and any earlier batch that failed)."""
        if self._flush_lock is None:
            self._flush_lock = asyncio.Lock()
        async with self._flush_lock:
            outcome = await self.writer.write(self.drain(), self._save, now=time.monotonic())
            report_outcome(outcome, "workflows", metrics=self.monitor.metrics, emit=self.monitor.emit,
                           now_ns=self.monitor.clock.now_ns)

    async def _save(self, records: list[WorkflowExecution | WorkflowStep]) -> None:
        """Write a batch of executions and steps in one storage write (upserts: a retry is harmless)."""
        executions = [record for record in records if isinstance(record, WorkflowExecution)]
        steps = [record for record in records if not isinstance(record, WorkflowExecution)]
        await self._storage().write_workflows(executions, steps)

    async def get(self, execution_id: str) -> tuple[WorkflowExecution, list[WorkflowStep]] | None:
        """One stored execution with its steps (pending writes are flushed first)."""
        await self.flush()
        return await self._storage().get_execution(execution_id)

    async def executions(self, query: ExecutionQuery | None = None, **filters: Any) -> Page[WorkflowExecution]:
        """Stored executions, newest first: an ExecutionQuery or its fields (name, status, start_ns, end_ns,
        limit, cursor); pass `next_cursor` back as `cursor` for the next page."""
        if query is not None and filters:
            raise QueryError("pass an ExecutionQuery or its fields as keywords, not both")
        await self.flush()
        return await self._storage().list_executions(query or ExecutionQuery(**filters))

    async def stats(self, name: str, *, start_ns: int | None = None, end_ns: int | None = None) -> WorkflowStats:
        """Counts, success rate, p50/p95/p99 durations, running executions and last runs, per workflow and step."""
        await self.monitor.flush()  # the stats read the duration histograms back from storage
        await self.flush()
        return await workflow_stats(self._storage(), name, start_ns, end_ns)

    def _storage(self) -> Any:
        storage = self.monitor.storage
        if storage is None:
            raise TocsinError("the monitor is not started; use `async with monitor:` or monitor.start()")
        return storage

    # -- lifecycle --------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the writer and the expectation watcher on the running loop."""
        await self.start_writing()
        await self.expectations.start()

    async def stop(self) -> None:
        """Stop both and write what is still pending."""
        await self.expectations.stop()
        await self.stop_writing()

    async def start_writing(self) -> None:
        """Start the writer alone (every process writes its runs; only the leader checks expectations)."""
        if self._tasks:
            return
        self._loop = asyncio.get_running_loop()
        self._wake_event = asyncio.Event()
        self._tasks = [asyncio.create_task(self._writer(), name="tocsin-workflow-writer")]

    async def stop_writing(self) -> None:
        """Stop the writer and write what is still pending."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.flush()

    def _wake(self) -> None:
        loop, flag = self._loop, self._wake_event
        if loop is not None and flag is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(flag.set)
            except RuntimeError:  # the loop is closing
                pass

    def _buffer_full(self, message: str) -> None:
        internal_log.warning("tocsin: %s", message)
        self.monitor.emit(Event(topic="system", type="buffer_full", time_ns=self.monitor.clock.now_ns(),
                                data={"message": message}))

    async def _writer(self) -> None:
        flag = self._wake_event
        assert flag is not None
        while True:
            try:
                await asyncio.wait_for(flag.wait(), max(self.flush_interval, 0.01))
            except TimeoutError:
                pass
            flag.clear()
            try:
                await self.flush()
            except Exception as error:  # never let the writer die
                internal_log.warning("tocsin: writing workflow records failed: %r", error)

    def watching_from(self, now_ns: int) -> None:
        """Count missed runs from `now_ns` on (when this process began watching)."""
        self._watcher.since_ns = now_ns


class ExpectationChecks:
    """The expectation watcher's loop (`check_expectations` every `check_interval` on the monitor's clock) as a
    service of its own: leader work, while writing runs in every process (`monitor.workflows.expectations`)."""

    def __init__(self, workflows: WorkflowMonitor) -> None:
        self.workflows = workflows
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start watching now (missed runs count from now)."""
        if self._task is None:
            self.workflows.watching_from(self.workflows.monitor.clock.now_ns())
            self._task = asyncio.create_task(self._watch(), name="tocsin-workflow-watcher")

    async def stop(self) -> None:
        """Stop watching (the problems found so far stay)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _watch(self) -> None:
        workflows = self.workflows
        while True:
            await workflows.monitor.clock.sleep(max(workflows.check_interval, 0.01))
            try:
                await workflows.check_expectations()
            except Exception as error:  # never let the watcher die
                internal_log.warning("tocsin: checking workflow expectations failed: %r", error)
