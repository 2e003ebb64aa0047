"""Executions and steps as they run: context managers (sync and async), decorators, and explicit handles.

A `Run` is one execution of a named workflow and a `StepRun` one step of it. Entering a run starts a new
trace (the execution is the root span; a span current at the time is linked, not made the parent) and sets
`tocsin.signals.context.current_execution`, so logs carry the execution id; entering a step starts a child span of
whatever span is current inside the run and names the step in the context. Leaving the block ends it:
succeeded, or failed with the exception's message and traceback kept (the exception propagates, so a step
failure fails the execution unless the code catches it), or cancelled on `CancelledError`/`KeyboardInterrupt`.
`succeed()`, `fail(error)` and `cancel(reason)` end a run or step explicitly (engines, or code that decides).

Recording stays in memory and costs a few microseconds: a run or step puts itself in a bounded buffer when
it starts (and again at its end only if the writer took it in between); the writer turns it into a
`WorkflowExecution` / `WorkflowStep` when it drains, like the tracer does with spans.
"""

from __future__ import annotations

import functools
import inspect
import traceback as tracebacks
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from tocsin.errors import InstrumentError
from tocsin.models import Event, RunStatus, SpanLink, WorkflowExecution, WorkflowStep
from tocsin.signals.context import ExecutionContext, current_execution, current_span
from tocsin.signals.exceptions import safe_str

if TYPE_CHECKING:
    from tocsin.runtime import Runtime
    from tocsin.signals.buffer import BoundedBuffer
    from tocsin.signals.series import HistogramSeries
    from tocsin.signals.tracing import ActiveSpan

F = TypeVar("F", bound=Callable[..., Any])

_exec_get = current_execution.get
_exec_set = current_execution.set
_exec_reset = current_execution.reset

DURATION = "tocsin_workflow_duration_seconds"
STEP_DURATION = "tocsin_workflow_step_duration_seconds"
EXECUTIONS = "tocsin_workflow_executions_total"
STEP_FAILURES = "tocsin_workflow_step_failures_total"


def describe(error: BaseException | str) -> tuple[str, str | None]:
    """(`Type: message`, formatted traceback) for an exception; (text, None) for a string."""
    if isinstance(error, BaseException):
        message = safe_str(error)
        summary = f"{type(error).__name__}: {message}" if message else type(error).__name__
        return summary, "".join(tracebacks.format_exception(error))
    return str(error), None


def _status_for(error: BaseException) -> RunStatus:
    return "failed" if isinstance(error, Exception) else "cancelled"




def end_span(span: ActiveSpan, status: str, error: object, message: str | None) -> None:
    """End an execution's or step's span; anything but success records the exception and an error status."""
    if status != "succeeded":
        if isinstance(error, BaseException):
            span.record_exception(error)
        span.set_status("error", message or status)
    span.end()

def each_call_in(fn: F, make: Callable[[], Any]) -> F:
    """Wrap `fn` (def or async def) so each call runs inside a fresh context manager from `make()`."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def call_async(*args: Any, **kwargs: Any) -> Any:
            async with make():
                return await fn(*args, **kwargs)

        return call_async  # type: ignore[return-value]

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        with make():
            return fn(*args, **kwargs)

    return call  # type: ignore[return-value]

class Recorder:
    """Where runs and steps report: the tracer, the clock, metrics, the write buffer, events and logs."""

    def __init__(self, monitor: Runtime, buffer: BoundedBuffer[Run | StepRun]) -> None:
        self.tracer = monitor.tracer
        self.now = monitor.clock.now_ns
        self.emit = monitor.emit
        self.log = monitor.log
        self.buffer = buffer
        self.active: dict[str, Run] = {}
        metrics = monitor.metrics
        self.durations = metrics.histogram(DURATION, "Workflow execution duration by outcome", unit="s")
        self.step_durations = metrics.histogram(STEP_DURATION, "Workflow step duration by outcome", unit="s")
        self.executions = metrics.counter(EXECUTIONS, "Finished workflow executions by status")
        self.step_failures = metrics.counter(STEP_FAILURES, "Failed workflow steps")
        self._step_series: dict[tuple[str, str, str], HistogramSeries] = {}

    def enqueue(self, item: Run | StepRun) -> None:
        """Queue a run or step for the writer unless it is already waiting there."""
        if not item._queued:
            item._queued = True
            if not self.buffer.put(item):
                item._queued = False

    def run_started(self, run: Run) -> None:
        """A run began: make it findable by id, queue it, and announce it."""
        self.active[run.id] = run
        self.enqueue(run)
        self.emit(Event(topic="workflows", type="started", time_ns=run.started_ns,
                        data={"execution_id": run.id, "workflow": run.name}))

    def run_ended(self, run: Run) -> None:
        """A run ended: metrics, queue, event, and an error log when it failed."""
        seconds = (run.ended_ns - run.started_ns) / 1e9  # type: ignore[operator]  # set by Run._end
        self.durations.observe(seconds, workflow=run.name, status=run.status)
        self.executions.inc(workflow=run.name, status=run.status)
        self.active.pop(run.id, None)
        self.enqueue(run)
        if run.status == "failed":
            self._log_failure(run, None, "workflow execution failed")
        self.emit(Event(topic="workflows", type=run.status, time_ns=run.ended_ns or 0, data={
            "execution_id": run.id, "workflow": run.name, "duration_s": seconds, "error": run.error,
        }))  # fmt: skip

    def step_ended(self, step: StepRun) -> None:
        """A step ended: its duration histogram, and on failure a counter, an error log and an event."""
        run = step.run
        status = step.status
        key = (run.name, step.name, status)
        series = self._step_series.get(key)
        if series is None:
            series = self._step_series[key] = self.step_durations.labels(workflow=run.name, step=step.name,
                                                                          status=status)
        series.observe((step.ended_ns - step.started_ns) / 1e9)  # type: ignore[operator]  # set by StepRun._end
        self.enqueue(step)
        if status == "failed":
            self.step_failures.inc(workflow=run.name, step=step.name)
            self._log_failure(run, step, "workflow step failed")
            self.emit(Event(topic="workflows", type="step_failed", time_ns=step.ended_ns or 0, data={
                "execution_id": run.id, "workflow": run.name, "step": step.name, "error": step.error,
            }))  # fmt: skip

    def _log_failure(self, run: Run, step: StepRun | None, message: str) -> None:
        """Log in the run's (and step's) context, so the record carries execution_id, step and the trace."""
        item = step or run
        context_token = _exec_set(ExecutionContext(run.id, step.name if step else None))
        span_token = current_span.set(item.span)
        try:
            self.log.error(message, workflow=run.name, error=item.error, traceback=item.traceback or "")
        finally:
            current_span.reset(span_token)
            _exec_reset(context_token)


def _root_span(recorder: Recorder, name: str, attributes: dict[str, Any]) -> ActiveSpan:
    """Start (not make current) a span that begins a new trace, linked to the span current now, if any."""
    outer = current_span.get()
    if outer is None:
        return recorder.tracer.start_span(name, attributes=attributes)
    token = current_span.set(None)
    try:
        return recorder.tracer.start_span(name, attributes=attributes,
                                          links=[SpanLink(trace_id=outer.trace_id, span_id=outer.span_id)])
    finally:
        current_span.reset(token)


class Run:
    """One execution of a workflow: a context manager (sync and async), a decorator, or an explicit handle.

    Made by `monitor.workflows.execution(name, params=...)`; it starts when entered (or `start()`ed). As a
    decorator each call of the function is a new execution with the same name and params.
    """

    __slots__ = (
        "_context_token",
        "_contexts",
        "_failed_by",
        "_open",
        "_queued",
        "_recorder",
        "_span_token",
        "ended_ns",
        "error",
        "id",
        "name",
        "params",
        "span",
        "started_ns",
        "status",
        "traceback",
    )

    def __init__(
        self, recorder: Recorder, name: str, params: Mapping[str, Any] | None = None, execution_id: str | None = None
    ) -> None:
        if not isinstance(name, str) or not name:
            raise InstrumentError(f"a workflow name must be a non-empty str, got {name!r}")
        if execution_id is not None and (not isinstance(execution_id, str) or not execution_id):
            raise InstrumentError(f"an execution id must be a non-empty str, got {execution_id!r}")
        self._recorder = recorder
        self.name = name
        self.params = dict(params) if params else {}
        self.id = execution_id or ""
        self.status: RunStatus = "running"
        self.started_ns = 0
        self.ended_ns: int | None = None
        self.error: str | None = None
        self.traceback: str | None = None
        self.span: ActiveSpan | None = None
        self._open: dict[str, StepRun] = {}
        self._contexts: dict[str, ExecutionContext] = {}  # one per step name: steps repeat, contexts are frozen
        self._queued = False
        self._failed_by: tuple[BaseException, str] | None = None
        self._context_token: Any = None
        self._span_token: Any = None

    # -- starting and ending ----------------------------------------------------------------------------

    def start(self) -> Run:
        """Start the execution now without making it current (engines; `with` does this and more)."""
        if self.span is not None:
            raise InstrumentError(f"execution {self.id or self.name!r} was already started; make a new one")
        recorder = self._recorder
        if self.id in recorder.active:
            raise InstrumentError(f"execution id {self.id!r} is already running")
        attributes = {"workflow.name": self.name, **{f"workflow.param.{k}": v for k, v in self.params.items()}}
        span = self.span = _root_span(recorder, self.name, attributes)
        if not self.id:
            self.id = span.trace_id
        span.set_attribute("workflow.execution_id", self.id)
        self.started_ns = recorder.now()
        recorder.run_started(self)
        return self

    def _end(self, status: RunStatus, error: BaseException | str | None = None) -> None:
        if self.status != "running" or self.span is None:
            return
        for step in list(self._open.values()):
            step._end("cancelled", f"the execution ended ({status}) while the step was running")
        if error is not None:
            summary, self.traceback = describe(error)
            failed_by = self._failed_by
            if failed_by is not None and failed_by[0] is error:
                summary = f"step {failed_by[1]!r} failed: {summary}"
            self.error = summary
        self.ended_ns = self._recorder.now()
        self.status = status
        end_span(self.span, status, error, self.error)
        self._recorder.run_ended(self)

    def succeed(self) -> None:
        """End the execution as succeeded (does nothing once it has ended)."""
        self._end("succeeded")

    def fail(self, error: BaseException | str) -> None:
        """End the execution as failed with an exception (its traceback is kept) or a message."""
        self._end("failed", error)

    def cancel(self, reason: str = "cancelled") -> None:
        """End the execution as cancelled."""
        self._end("cancelled", reason)

    # -- steps --------------------------------------------------------------------------------------------

    def step(self, name: str) -> StepRun:
        """A step of this execution, to use with `with` / `async with` (it starts when entered)."""
        return StepRun(self._recorder, name, self)

    def start_step(self, name: str) -> StepRun:
        """Start a step now without making it current; end it with `succeed()` / `fail()` (engines)."""
        if name in self._open:
            raise InstrumentError(f"step {name!r} of execution {self.id!r} is already running")
        step = StepRun(self._recorder, name, self)
        step._start(current=False)
        self._open[name] = step
        return step

    def open_step(self, name: str) -> StepRun:
        """A step started with `start_step` and not ended yet, by name."""
        try:
            return self._open[name]
        except KeyError:
            running = ", ".join(self._open) or "none"
            raise InstrumentError(f"execution {self.id!r} has no running step {name!r}; running: {running}") from None

    # -- context manager and decorator --------------------------------------------------------------------

    def __enter__(self) -> Run:
        self.start()
        self._span_token = current_span.set(self.span)
        self._context_token = _exec_set(ExecutionContext(self.id))
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self._end("succeeded")
        else:
            self._end(_status_for(exc), exc)
        _exec_reset(self._context_token)
        current_span.reset(self._span_token)

    async def __aenter__(self) -> Run:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, fn: F) -> F:
        """Use as a decorator: each call of `fn` (def or async def) is a new execution."""
        if self.id:
            raise InstrumentError("an execution with a fixed id cannot decorate a function (each call is a new run)")
        recorder, name, params = self._recorder, self.name, self.params
        return each_call_in(fn, lambda: Run(recorder, name, params))

    # -- reading --------------------------------------------------------------------------------------------

    @property
    def trace_id(self) -> str | None:
        """The execution's trace id, once started."""
        return None if self.span is None else self.span.trace_id

    def to_model(self) -> WorkflowExecution:
        """The execution as stored."""
        span = self.span
        sampled = span is not None and span.sampled
        return WorkflowExecution(
            id=self.id, name=self.name, status=self.status, started_ns=self.started_ns, ended_ns=self.ended_ns,
            params=self.params, trace_id=span.trace_id if sampled else None,
            span_id=span.span_id if sampled else None, error=self.error,
        )  # fmt: skip

    def __repr__(self) -> str:
        return f"<Run {self.name!r} {self.id or 'not started'} {self.status}>"


class StepRun:
    """One step of an execution: a context manager (sync and async), a decorator, or an explicit handle.

    Made by `run.step(name)`, or by `monitor.workflows.step(name)` which finds the execution the code runs
    in when entered (outside any execution the block simply runs, untracked).
    """

    __slots__ = (
        "_context_token",
        "_queued",
        "_recorder",
        "ended_ns",
        "error",
        "name",
        "run",
        "span",
        "started_ns",
        "status",
        "traceback",
    )

    def __init__(self, recorder: Recorder, name: str, run: Run | None) -> None:
        if not isinstance(name, str) or not name:
            raise InstrumentError(f"a step name must be a non-empty str, got {name!r}")
        self._recorder = recorder
        self.name = name
        self.run: Run = run  # type: ignore[assignment]  # None only until a context-bound step is entered
        self.status: RunStatus = "running"
        self.started_ns = 0
        self.ended_ns: int | None = None
        self.error: str | None = None
        self.traceback: str | None = None
        self.span: ActiveSpan | None = None
        self._queued = False
        self._context_token: Any = None

    def _start(self, *, current: bool) -> None:
        run = self.run
        if self.span is not None:
            raise InstrumentError(f"step {self.name!r} was already started; make a new one")
        if run.status != "running" or run.span is None:
            raise InstrumentError(f"step {self.name!r}: execution {run.id or run.name!r} is not running")
        recorder = self._recorder
        context = _exec_get()
        # Inside the run's own context a step nests under the current span; elsewhere under the run's span.
        parent = None if context is not None and context.execution_id == run.id else run.span
        self.started_ns = recorder.now()
        if current:
            self.span = recorder.tracer.span(self.name, parent=parent).__enter__()  # type: ignore[arg-type]
            step_context = run._contexts.get(self.name)
            if step_context is None:
                step_context = run._contexts[self.name] = ExecutionContext(run.id, self.name)
            self._context_token = _exec_set(step_context)
        else:
            self.span = recorder.tracer.start_span(self.name, parent=parent)  # type: ignore[arg-type]
        recorder.enqueue(self)

    def _end(self, status: RunStatus, error: BaseException | str | None = None, traceback: str | None = None) -> None:
        if self.status != "running" or self.span is None:
            return
        run = self.run
        if error is not None:
            self.error, described = describe(error)
            self.traceback = described or traceback
            if isinstance(error, BaseException) and run._failed_by is None:
                run._failed_by = (error, self.name)  # the innermost step an exception left first
        self.ended_ns = self._recorder.now()
        self.status = status
        end_span(self.span, status, error, self.error)
        if run._open.get(self.name) is self:
            del run._open[self.name]
        self._recorder.step_ended(self)

    def succeed(self) -> None:
        """End the step as succeeded (does nothing once it has ended)."""
        self._end("succeeded")

    def fail(self, error: BaseException | str, traceback: str | None = None) -> None:
        """End the step as failed with an exception (traceback kept) or a message (and an optional traceback)."""
        self._end("failed", error, traceback)

    def cancel(self, reason: str = "cancelled") -> None:
        """End the step as cancelled."""
        self._end("cancelled", reason)

    # -- context manager and decorator --------------------------------------------------------------------

    def __enter__(self) -> StepRun:
        if self.run is None:
            context = _exec_get()
            run = self._recorder.active.get(context.execution_id) if context is not None else None
            if run is None:
                return self  # not inside an execution: run the block untracked
            self.run = run
        self._start(current=True)
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        span = self.span
        if span is None:
            return
        if exc is None:
            self._end("succeeded")
        else:
            self._end(_status_for(exc), exc)
        _exec_reset(self._context_token)
        span.__exit__(None, None, None)  # the span has ended; this only restores the current span

    async def __aenter__(self) -> StepRun:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, fn: F) -> F:
        """Use as a decorator: each call of `fn` (def or async def) is this step of the current execution."""
        recorder, name, run = self._recorder, self.name, self.run
        return each_call_in(fn, lambda: StepRun(recorder, name, run))

    def to_model(self) -> WorkflowStep:
        """The step as stored."""
        span = self.span
        return WorkflowStep(
            execution_id=self.run.id, name=self.name, status=self.status, started_ns=self.started_ns,
            ended_ns=self.ended_ns, span_id=span.span_id if span is not None and span.sampled else None,
            error=self.error, traceback=self.traceback,
        )  # fmt: skip

    def __repr__(self) -> str:
        return f"<StepRun {self.name!r} {self.status}>"
