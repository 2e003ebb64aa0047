"""Workflow expectations: how long a workflow (or one of its steps) may run, and when it should run.

The watcher reads stored executions, so it sees runs reported by engines and runs orphaned by a crash too.
An execution running longer than `max_duration` is "stuck"; a running step older than its
`step_max_duration` is "step_stuck"; a schedule whose next expected run (after the newest execution, or
after the watcher started) is more than `grace` overdue is "missed" (healthchecks.io's period + grace).
Each problem raises one "workflows" event when it appears (a missed run once per missed slot) and stays in
`problems()` until it clears: the execution ends, or a new run starts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import msgspec

from tocsin.config.schedules import Cron, Every, parse_schedule
from tocsin.config.schema import ExpectationConfig
from tocsin.errors import ConfigError
from tocsin.models import Event, WorkflowExecution
from tocsin.storage.protocol import ExecutionQuery, StorageBackend

if TYPE_CHECKING:
    from tocsin.runtime import Runtime

MAX_MISSED = 10_000  # slots counted after a long outage before we stop counting


class WorkflowProblem(msgspec.Struct, kw_only=True):
    """An expectation a workflow breaks right now."""

    workflow: str
    kind: Literal["stuck", "step_stuck", "missed"]
    since_ns: int
    message: str
    execution_id: str | None = None
    step: str | None = None
    expected_ns: int | None = None


@dataclass(frozen=True)
class Expectation:
    """A parsed `[[workflows.expect]]` entry."""

    name: str
    max_duration_s: float | None = None
    step_max_duration_s: tuple[tuple[str, float], ...] = ()
    schedule: Every | Cron | None = None
    grace_s: float = 300.0

    @classmethod
    def from_config(cls, config: ExpectationConfig) -> Expectation:
        """Parse the schedule and copy the limits."""
        return cls(
            name=config.name,
            max_duration_s=None if config.max_duration is None else float(config.max_duration),
            step_max_duration_s=tuple((step, float(limit)) for step, limit in config.step_max_duration.items()),
            schedule=None if config.schedule is None else parse_schedule(config.schedule, config.timezone),
            grace_s=float(config.grace),
        )


Key = tuple[str, str, str | None, str | None]  # kind, workflow, execution id, step


class ExpectationWatcher:
    """Checks every expectation against stored executions and keeps the problems that are open."""

    def __init__(self, monitor: Runtime) -> None:
        self.monitor = monitor
        self.expectations: dict[str, Expectation] = {}
        self.since_ns = monitor.clock.now_ns()
        self._open: dict[Key, WorkflowProblem] = {}

    def add(self, expectation: Expectation) -> None:
        """Watch one more workflow; one expectation per workflow name."""
        if expectation.name in self.expectations:
            raise ConfigError(f"workflow {expectation.name!r} already has an expectation; give it in one place")
        self.expectations[expectation.name] = expectation

    def problems(self) -> list[WorkflowProblem]:
        """The problems open after the last check, oldest first."""
        return sorted(self._open.values(), key=lambda problem: (problem.since_ns, problem.workflow))

    async def check(self, storage: StorageBackend, now_ns: int) -> list[Event]:
        """Compare every expectation with storage at `now_ns`; returns the events for problems that appeared."""
        found: dict[Key, WorkflowProblem] = {}
        for expectation in self.expectations.values():
            if expectation.max_duration_s is not None or expectation.step_max_duration_s:
                for execution in await _running(storage, expectation.name):
                    await self._durations(storage, expectation, execution, now_ns, found)
            if expectation.schedule is not None:
                await self._schedule(storage, expectation, now_ns, found)
        events = []
        for key, problem in found.items():
            before = self._open.get(key)
            if before is None or before.expected_ns != problem.expected_ns:
                events.append(_event(problem, now_ns))
        self._open = found
        return events

    async def _durations(self, storage: StorageBackend, expectation: Expectation, execution: WorkflowExecution,
                         now_ns: int, found: dict[Key, WorkflowProblem]) -> None:
        name, running_s = expectation.name, (now_ns - execution.started_ns) / 1e9
        limit = expectation.max_duration_s
        if limit is not None and running_s > limit:
            key: Key = ("stuck", name, execution.id, None)
            found[key] = self._open.get(key) or WorkflowProblem(
                workflow=name, kind="stuck", since_ns=execution.started_ns + round(limit * 1e9),
                execution_id=execution.id,
                message=f"execution {execution.id} of {name!r} has run {_human(running_s)}, "
                        f"over its {_human(limit)} limit",
            )  # fmt: skip
        if not expectation.step_max_duration_s:
            return
        stored = await storage.get_execution(execution.id)
        limits = dict(expectation.step_max_duration_s)
        for step in stored[1] if stored is not None else []:
            step_limit = limits.get(step.name)
            step_s = (now_ns - step.started_ns) / 1e9
            if step.status == "running" and step_limit is not None and step_s > step_limit:
                key = ("step_stuck", name, execution.id, step.name)
                found[key] = self._open.get(key) or WorkflowProblem(
                    workflow=name, kind="step_stuck", since_ns=step.started_ns + round(step_limit * 1e9),
                    execution_id=execution.id, step=step.name,
                    message=f"step {step.name!r} of {name!r} ({execution.id}) has run {_human(step_s)}, "
                            f"over its {_human(step_limit)} limit",
                )  # fmt: skip

    async def _schedule(self, storage: StorageBackend, expectation: Expectation, now_ns: int,
                        found: dict[Key, WorkflowProblem]) -> None:
        schedule = expectation.schedule
        assert schedule is not None
        newest = await storage.list_executions(ExecutionQuery(name=expectation.name, limit=1))
        last_run = newest.items[0].started_ns if newest.items else None
        grace_ns = round(expectation.grace_s * 1e9)
        first = latest = schedule.next_after(max(last_run or 0, self.since_ns))
        if first + grace_ns > now_ns:
            return
        missed = 1
        while missed < MAX_MISSED and (following := schedule.next_after(latest)) + grace_ns <= now_ns:
            latest, missed = following, missed + 1
        runs = "a run" if missed == 1 else f"{missed} runs"
        found[("missed", expectation.name, None, None)] = WorkflowProblem(
            workflow=expectation.name, kind="missed", since_ns=first + grace_ns, expected_ns=latest,
            message=f"{expectation.name!r} missed {runs}: none started since "
                    f"{'the watch began' if last_run is None else 'the last one'}; "
                    f"the latest was due at {_iso(latest)}",
        )  # fmt: skip


async def _running(storage: StorageBackend, name: str) -> list[WorkflowExecution]:
    running: list[WorkflowExecution] = []
    cursor = None
    while True:
        page = await storage.list_executions(ExecutionQuery(name=name, status="running", limit=500, cursor=cursor))
        running += page.items
        cursor = page.next_cursor
        if cursor is None:
            return running


def _human(seconds: float) -> str:
    return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.0f}s"


def _iso(time_ns: int) -> str:
    return dt.datetime.fromtimestamp(time_ns / 1e9, dt.UTC).isoformat(timespec="seconds")


def _event(problem: WorkflowProblem, now_ns: int) -> Event:
    data = {key: value for key, value in msgspec.structs.asdict(problem).items() if value is not None}
    return Event(topic="workflows", type=problem.kind, time_ns=now_ns, data=data)
