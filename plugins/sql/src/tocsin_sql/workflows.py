"""Workflow executions and their steps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from tocsin.ext import ExecutionQuery, Page, WorkflowExecution, WorkflowStep
from tocsin_sql import codec, ids, paging
from tocsin_sql.database import Database
from tocsin_sql.dialect import Dialect
from tocsin_sql.schema import workflow_executions, workflow_steps

EXECUTION_COLUMNS = tuple(workflow_executions.c)
STEP_COLUMNS = tuple(column for column in workflow_steps.c if column.key != "id")


def encode_execution(execution: WorkflowExecution) -> tuple[Any, ...]:
    """An execution as a row (EXECUTION_COLUMNS order)."""
    return (
        execution.id,
        execution.name,
        execution.status,
        execution.started_ns,
        execution.ended_ns,
        codec.pack(execution.params, "WorkflowExecution"),
        ids.optional_trace_bytes(execution.trace_id, "WorkflowExecution trace_id"),
        ids.optional_span_bytes(execution.span_id, "WorkflowExecution span_id"),
        execution.error,
    )


def _decode_execution(row: Sequence[Any]) -> WorkflowExecution:
    return WorkflowExecution(
        id=row[0],
        name=row[1],
        status=row[2],
        started_ns=row[3],
        ended_ns=row[4],
        params=codec.unpack_dict(row[5]),
        trace_id=ids.hex_or_none(row[6]),
        span_id=ids.hex_or_none(row[7]),
        error=row[8],
    )


def encode_step(step: WorkflowStep) -> tuple[Any, ...]:
    """A step as a row (STEP_COLUMNS order)."""
    return (
        step.execution_id,
        step.name,
        step.started_ns,
        step.status,
        step.ended_ns,
        ids.optional_span_bytes(step.span_id, "WorkflowStep span_id"),
        step.error,
        step.traceback,
    )


def _decode_step(row: Sequence[Any]) -> WorkflowStep:
    return WorkflowStep(
        execution_id=row[0],
        name=row[1],
        started_ns=row[2],
        status=row[3],
        ended_ns=row[4],
        span_id=ids.hex_or_none(row[5]),
        error=row[6],
        traceback=row[7],
    )


def _upsert_execution(d: Dialect) -> sa.ClauseElement:
    insert = d.insert(workflow_executions)
    replaced = {c.key: insert.excluded[c.key] for c in EXECUTION_COLUMNS if c.key != "id"}
    return insert.on_conflict_do_update(index_elements=[workflow_executions.c.id], set_=replaced)


def _upsert_step(d: Dialect) -> sa.ClauseElement:
    insert = d.insert(workflow_steps).values({c.key: sa.bindparam(c.key) for c in STEP_COLUMNS})
    key = [workflow_steps.c.execution_id, workflow_steps.c.name, workflow_steps.c.started_ns]
    replaced = {c.key: insert.excluded[c.key] for c in STEP_COLUMNS if c not in key}
    return insert.on_conflict_do_update(index_elements=key, set_=replaced)


def save_execution(db: Database, row: tuple[Any, ...]) -> None:
    """Create or replace an encoded execution by id."""
    db.run(db.sql(_upsert_execution), row)


def save_step(db: Database, row: tuple[Any, ...]) -> None:
    """Create or replace an encoded step by (execution_id, name, started_ns)."""
    db.run(db.sql(_upsert_step), row)


def write(db: Database, executions: Sequence[tuple[Any, ...]], steps: Sequence[tuple[Any, ...]]) -> None:
    """Create or replace encoded executions and steps, one statement each for the whole batch, in order."""
    if executions:
        db.run_many(db.sql(_upsert_execution), executions)
    if steps:
        db.run_many(db.sql(_upsert_step), steps)


def _execution(_: Dialect) -> sa.Select:
    return sa.select(*EXECUTION_COLUMNS).where(workflow_executions.c.id == sa.bindparam("id"))


def _steps(_: Dialect) -> sa.Select:
    s = workflow_steps.c
    return sa.select(*STEP_COLUMNS).where(s.execution_id == sa.bindparam("id")).order_by(s.started_ns, s.name)


def get_execution(db: Database, execution_id: str) -> tuple[WorkflowExecution, list[WorkflowStep]] | None:
    """An execution with its steps ordered by start (then name)."""
    row = db.fetch_one(db.sql(_execution), {"id": execution_id})
    if row is None:
        return None
    steps = db.fetch(db.sql(_steps), {"id": execution_id})
    return _decode_execution(row), [_decode_step(step) for step in steps]


def _list(_: Dialect, name: bool, status: bool, start: bool, end: bool, cursor: bool, count: bool) -> sa.Select:
    e = workflow_executions.c
    where = []
    if name:
        where.append(e.name == sa.bindparam("name"))
    if status:
        where.append(e.status == sa.bindparam("status"))
    if start:
        where.append(e.started_ns >= sa.bindparam("start"))
    if end:
        where.append(e.started_ns < sa.bindparam("end"))
    if cursor:
        where.append(paging.before(e.started_ns, e.id))
    if count:
        return sa.select(sa.func.count()).select_from(workflow_executions).where(*where)
    return sa.select(*EXECUTION_COLUMNS).where(*where).order_by(e.started_ns.desc(), e.id.desc()).limit(
        sa.bindparam("limit")
    )


def list_executions(db: Database, query: ExecutionQuery) -> Page[WorkflowExecution]:
    """Executions passing every filter (start in [start_ns, end_ns)), newest start first."""
    paging.check_limit(query.limit)
    after = paging.cursor_key(query.cursor, tuple[int, str])
    params = {"name": query.name, "status": query.status, "start": query.start_ns, "end": query.end_ns,
              "limit": query.limit + 1, **after}
    shape = (query.name is not None, query.status is not None, query.start_ns is not None, query.end_ns is not None)
    total = db.fetch(db.sql(_list, *shape, False, True), params)[0][0]
    items = [_decode_execution(row) for row in db.fetch(db.sql(_list, *shape, bool(after), False), params)]
    return paging.page(items, query.limit, lambda e: (e.started_ns, e.id), total)
