"""Per-workflow and per-step statistics, read back from storage so any process (or replica) can answer.

Counts and percentiles come from the duration histograms every run records (`tocsin_workflow_duration_seconds`
by workflow and status, `tocsin_workflow_step_duration_seconds` by workflow, step and status): percentiles
merge stored sketches (≤ 1 % relative error), so a month of runs costs a handful of queries. A time window
is therefore aligned to metric flush intervals. The last run, the running executions and each step's last
run come from the stored executions.
"""

from __future__ import annotations

import msgspec

from tocsin.models import LabelMatcher, RunStatus, WorkflowExecution
from tocsin.storage.protocol import ExecutionQuery, MetricQuery, StorageBackend
from tocsin.workflows.runs import DURATION, STEP_DURATION

QUANTILES = ("p50", "p95", "p99")
END_OF_TIME = 2**63 - 1


class Outcomes(msgspec.Struct, kw_only=True):
    """Finished runs of a workflow or a step: counts by outcome and duration percentiles (s)."""

    name: str
    count: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    success_rate: float | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None


class StepStats(Outcomes, kw_only=True):
    """How one step of a workflow did, and its last run."""

    last_run_ns: int | None = None
    last_status: RunStatus | None = None


class WorkflowStats(Outcomes, kw_only=True):
    """How a workflow did, its running executions, its last run, and each of its steps."""

    active: int = 0
    last_run: WorkflowExecution | None = None
    steps: list[StepStats] = []


def _add_outcome(stats: Outcomes, status: str, count: int) -> None:
    if status in ("succeeded", "failed", "cancelled"):
        setattr(stats, status, getattr(stats, status) + count)
        stats.count += count


def _rate(stats: Outcomes) -> None:
    stats.success_rate = stats.succeeded / stats.count if stats.count else None


async def workflow_stats(
    storage: StorageBackend,
    name: str,
    start_ns: int | None = None,
    end_ns: int | None = None,
    *,
    recent: int = 50,
) -> WorkflowStats:
    """Stats of workflow `name` over [start_ns, end_ns) (all stored data by default).

    Each step's last run is looked up in the `recent` newest executions.
    """
    start, end = start_ns or 0, end_ns or END_OF_TIME
    match = [LabelMatcher(label="workflow", value=name)]

    async def query(metric: str, aggregate: str, by: list[str]) -> list[tuple[dict[str, str], float]]:
        series = await storage.query_metrics(MetricQuery(name=metric, start_ns=start, end_ns=end,
                                                         aggregate=aggregate, matchers=match, by=by))  # type: ignore[arg-type]
        return [(s.labels, s.points[0][1]) for s in series if s.points]

    stats = WorkflowStats(name=name)
    for labels, count in await query(DURATION, "count", ["status"]):
        _add_outcome(stats, labels.get("status", ""), int(count))
    _rate(stats)
    for quantile in QUANTILES:
        for _, value in await query(DURATION, quantile, []):
            setattr(stats, quantile, value)

    steps: dict[str, StepStats] = {}
    for labels, count in await query(STEP_DURATION, "count", ["step", "status"]):
        step = steps.setdefault(labels.get("step", ""), StepStats(name=labels.get("step", "")))
        _add_outcome(step, labels.get("status", ""), int(count))
    for quantile in QUANTILES:
        for labels, value in await query(STEP_DURATION, quantile, ["step"]):
            if labels.get("step") in steps:
                setattr(steps[labels["step"]], quantile, value)
    for step in steps.values():
        _rate(step)

    window = {"name": name, "start_ns": start_ns, "end_ns": end_ns}
    running = await storage.list_executions(ExecutionQuery(status="running", limit=1, **window))
    stats.active = running.total if running.total is not None else await _count(storage, window)
    newest = await storage.list_executions(ExecutionQuery(limit=recent, **window))
    stats.last_run = newest.items[0] if newest.items else None
    await _last_step_runs(storage, newest.items, steps)
    stats.steps = [steps[name] for name in sorted(steps)]
    return stats


async def _count(storage: StorageBackend, window: dict[str, object]) -> int:
    """Running executions, page by page, for a backend that does not report totals."""
    count, cursor = 0, None
    while True:
        page = await storage.list_executions(ExecutionQuery(status="running", limit=500, cursor=cursor,
                                                            **window))  # type: ignore[arg-type]
        count += len(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return count


async def _last_step_runs(storage: StorageBackend, executions: list[WorkflowExecution],
                          steps: dict[str, StepStats]) -> None:
    """Fill each step's last run from the newest executions that ran it."""
    missing = set(steps)
    for execution in executions:
        if not missing:
            return
        found = await storage.get_execution(execution.id)
        if found is None:
            continue
        for step in reversed(found[1]):
            if step.name in missing:
                missing.discard(step.name)
                steps[step.name].last_run_ns = step.started_ns
                steps[step.name].last_status = step.status
