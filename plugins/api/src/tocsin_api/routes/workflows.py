"""`/api/v1` workflows endpoints: workflows with their last run, executions, one execution in full, stats.

The storage protocol has no "workflow names" query. `GET /workflows` takes the names from the finished-run
counter every execution records (`tocsin_workflow_executions_total{workflow,status}`, one series per workflow
and status, so a cheap and complete source within metrics retention), plus the newest `SCAN_LIMIT`
executions for workflows that have only ever been running; each workflow on the page then costs two indexed
execution queries (its last run, and how many are running).
"""

from __future__ import annotations

import time
from typing import Literal

import msgspec
from litestar import get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery

from tocsin import Monitor
from tocsin.ext import (
    MAX_QUERY_LIMIT,
    ExecutionQuery,
    LogHit,
    LogQuery,
    MetricQuery,
    Page,
    StorageBackend,
    WorkflowExecution,
    WorkflowStats,
    WorkflowStep,
    decode_cursor,
    encode_cursor,
)
from tocsin_api import params
from tocsin_api.deps import MonitorDep

RunStatus = Literal["running", "succeeded", "failed", "cancelled"]
"""An execution's or step's status (as `WorkflowExecution.status`)."""

EXECUTIONS_METRIC = "tocsin_workflow_executions_total"
"""The counter every finished execution adds to, by `workflow` and `status` (docs/workflows.md)."""
SCAN_LIMIT = 1000
"""The newest executions `GET /workflows` reads for workflows the counter does not know yet."""
END_OF_TIME = 2**63 - 1


class WorkflowSummary(msgspec.Struct, kw_only=True):
    """A workflow: finished runs in the range by outcome, executions running now, and its newest execution."""

    name: str
    finished: int
    succeeded: int
    failed: int
    cancelled: int
    running: int
    last_run: WorkflowExecution | None


class ExecutionDetail(msgspec.Struct, kw_only=True):
    """One execution with its steps by start, its trace id (`GET /traces/{trace_id}` shows the spans), and its
    newest logs (`logs.next_cursor` continues at `GET /logs?execution_id=<id>&cursor=...`)."""

    execution: WorkflowExecution
    steps: list[WorkflowStep]
    trace_id: str | None
    logs: Page[LogHit]


async def _finished_counts(monitor: Monitor, start_ns: int | None, end_ns: int | None) -> dict[str, dict[str, int]]:
    """Finished runs per workflow and status in [start, end), from the executions counter."""
    storage = monitor.storage
    assert storage is not None
    series = await storage.query_metrics(MetricQuery(
        name=EXECUTIONS_METRIC, start_ns=0 if start_ns is None else start_ns,
        end_ns=END_OF_TIME if end_ns is None else end_ns, aggregate="sum", by=["workflow", "status"],
    ))  # fmt: skip
    counts: dict[str, dict[str, int]] = {}
    for found in series:
        name = found.labels.get("workflow")
        if name is None:  # the overflow series past max_series_per_metric carries no names
            continue
        by_status = counts.setdefault(name, {})
        status = found.labels.get("status", "")
        by_status[status] = by_status.get(status, 0) + round(sum(value for _, value in found.points))
    return counts


async def _running(storage: StorageBackend, window: ExecutionQuery) -> int:
    """Running executions of one workflow in the window: the page total, or (for a backend that gives none)
    counted page by page up to MAX_QUERY_LIMIT."""
    query = msgspec.structs.replace(window, status="running", limit=1)
    page = await storage.list_executions(query)
    if page.total is not None:
        return page.total
    count, cursor = 0, None
    while count < MAX_QUERY_LIMIT:
        page = await storage.list_executions(msgspec.structs.replace(query, limit=1000, cursor=cursor))
        count += len(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    return min(count, MAX_QUERY_LIMIT)


@get("/workflows", summary="Workflows with their last run and counts", tags=["workflows"])
async def list_workflows(
    monitor: MonitorDep,
    start: FromQuery[str | None] = None,
    end: FromQuery[str | None] = None,
    cursor: FromQuery[str | None] = None,
    limit: FromQuery[int] = 100,
) -> Page[WorkflowSummary]:
    """Every workflow by name: runs finished in [start, end) by outcome, running ones, and the newest run."""
    limit = params.limit(limit)
    now_ns = time.time_ns()
    start_ns, end_ns = params.time_ns(start, "start", now_ns=now_ns), params.time_ns(end, "end", now_ns=now_ns)
    after = decode_cursor(cursor, tuple[str])[0] if cursor else None
    storage = monitor.storage
    assert storage is not None
    await monitor.workflows.flush()  # runs that just ended are listed as ended
    counts = await _finished_counts(monitor, start_ns, end_ns)
    recent = await storage.list_executions(ExecutionQuery(start_ns=start_ns, end_ns=end_ns, limit=SCAN_LIMIT))
    names = sorted(set(counts) | {execution.name for execution in recent.items})
    remaining = [name for name in names if after is None or name > after]
    page = remaining[:limit]
    items = []
    for name in page:
        window = ExecutionQuery(name=name, start_ns=start_ns, end_ns=end_ns, limit=1)
        newest = await storage.list_executions(window)
        running = await _running(storage, window)
        by_status = counts.get(name, {})
        succeeded, failed, cancelled = (by_status.get(s, 0) for s in ("succeeded", "failed", "cancelled"))
        items.append(WorkflowSummary(
            name=name, finished=succeeded + failed + cancelled, succeeded=succeeded, failed=failed,
            cancelled=cancelled, running=running,
            last_run=newest.items[0] if newest.items else None,
        ))  # fmt: skip
    next_cursor = encode_cursor((page[-1],)) if len(remaining) > limit else None
    return Page(items=items, next_cursor=next_cursor, total=len(names))


@get("/workflows/executions", summary="Search workflow executions", tags=["workflows"])
async def list_executions(
    monitor: MonitorDep,
    name: FromQuery[str | None] = None,
    status: FromQuery[RunStatus | None] = None,
    start: FromQuery[str | None] = None,
    end: FromQuery[str | None] = None,
    cursor: FromQuery[str | None] = None,
    limit: FromQuery[int] = 100,
) -> Page[WorkflowExecution]:
    """Executions newest (by start) first; `start` and `end` bound when they started."""
    now_ns = time.time_ns()
    query = ExecutionQuery(name=name or None, status=status, start_ns=params.time_ns(start, "start", now_ns=now_ns),
                           end_ns=params.time_ns(end, "end", now_ns=now_ns), cursor=cursor or None,
                           limit=params.limit(limit))
    return await monitor.workflows.executions(query)


@get("/workflows/executions/{execution_id:str}", summary="One execution with its steps and logs",
     tags=["workflows"])
async def get_execution(monitor: MonitorDep, execution_id: FromPath[str],
                        log_limit: FromQuery[int] = 100) -> ExecutionDetail:
    """The execution, its steps by start, its trace id and its newest `log_limit` log records."""
    log_limit = params.limit(log_limit, "log_limit")
    found = await monitor.workflows.get(execution_id)
    if found is None:
        raise NotFoundException(f"no workflow execution {execution_id!r}")
    execution, steps = found
    storage = monitor.storage
    assert storage is not None
    logs = await storage.search_logs(LogQuery(execution_id=execution.id, limit=log_limit))
    return ExecutionDetail(execution=execution, steps=steps, trace_id=execution.trace_id, logs=logs)


@get("/workflows/{name:str}/stats", summary="A workflow's outcomes, durations and steps", tags=["workflows"])
async def workflow_stats(monitor: MonitorDep, name: FromPath[str], start: FromQuery[str | None] = None,
                         end: FromQuery[str | None] = None) -> WorkflowStats:
    """Counts by outcome, success rate, p50/p95/p99 durations (s), running executions, the last run, and the
    same per step, over [start, end) (all stored data by default)."""
    now_ns = time.time_ns()
    stats = await monitor.workflows.stats(name, start_ns=params.time_ns(start, "start", now_ns=now_ns),
                                          end_ns=params.time_ns(end, "end", now_ns=now_ns))
    if stats.count == 0 and stats.last_run is None and not stats.steps:
        anywhere = await monitor.workflows.executions(ExecutionQuery(name=name, limit=1))
        if not anywhere.items:
            raise NotFoundException(f"no workflow {name!r} has been recorded")
    return stats


ROUTES = [list_workflows, list_executions, get_execution, workflow_stats]
