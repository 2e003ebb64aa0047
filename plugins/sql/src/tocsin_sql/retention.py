"""Retention sweeps as a series of small write transactions, so no sweep holds the write lock for long.

`Sweep(signal, cutoff_ns)` deletes what `StorageBackend.sweep` says for one signal; a backend runs
`sweep.step(db)` in its own short write transaction again and again until it returns True, letting other
writers in between. Each step deletes at most CHUNK rows of one table.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from tocsin_sql import groups, logkeys, metrics
from tocsin_sql import logs as log_rows
from tocsin_sql.alerts import SWEPT_STATES
from tocsin_sql.database import Database, one_of
from tocsin_sql.dialect import Dialect
from tocsin_sql.outbox import FINAL_STATES
from tocsin_sql.schema import (
    alert_transitions,
    alerts,
    deliveries,
    delivery_attempts,
    health,
    logs,
    silences,
    spans,
    workflow_executions,
    workflow_steps,
)

CHUNK = 2000
"""Most rows one sweep transaction deletes from one table."""

Step = Callable[[Database, int], tuple[int, bool]]
"""One chunk of a sweep: (rows deleted, whether this step has more to do)."""


def _chunk_delete(table: sa.Table, key: sa.Column, condition: Callable[[], sa.ColumnElement]) -> Step:
    """A step deleting up to CHUNK rows matching `condition` (which may use the `cutoff` parameter)."""

    def build(_: Dialect) -> sa.Delete:
        chosen = sa.select(key).where(condition()).order_by(key).limit(CHUNK).scalar_subquery()
        return sa.delete(table).where(key.in_(chosen))

    def step(db: Database, cutoff_ns: int) -> tuple[int, bool]:
        deleted = db.run(db.sql(build), {"cutoff": cutoff_ns})
        return deleted, deleted == CHUNK

    return step


def _cutoff() -> sa.BindParameter:
    return sa.bindparam("cutoff")


def _old_logs(_: Dialect) -> sa.Select:
    return (
        sa.select(*log_rows.COLUMNS)
        .where(logs.c.id < sa.bindparam("hi"), logs.c.time_ns < _cutoff())
        .order_by(logs.c.id)
        .limit(CHUNK)
    )


def _delete_log(_: Dialect) -> sa.Delete:
    return sa.delete(logs).where(logs.c.id == sa.bindparam("id"))


def _sweep_logs(db: Database, cutoff_ns: int) -> tuple[int, bool]:
    """Unindex then delete up to CHUNK logs older than the cutoff (ids bound the scan)."""
    hi = logkeys.id_range(None, cutoff_ns, log_rows.spill(db)).hi
    rows = db.fetch(db.sql(_old_logs), {"hi": hi, "cutoff": cutoff_ns})
    if rows:
        db.dialect.unindex_logs(db, rows)
        db.run_many(db.sql(_delete_log), [(row[0],) for row in rows])
    return len(rows), len(rows) == CHUNK


def _ids_of(key: sa.Column, condition: Callable[[], sa.ColumnElement]) -> Callable[..., sa.Select]:
    def build(_: Dialect) -> sa.Select:
        return sa.select(key).where(condition()).order_by(key).limit(CHUNK)

    return build


def _delete_where(table: sa.Table, column: sa.Column) -> Callable[[Dialect], sa.Delete]:
    def build(_: Dialect) -> sa.Delete:
        return sa.delete(table).where(column == sa.bindparam("key"))

    return build


_OLD_DELIVERIES = _ids_of(
    deliveries.c.id, lambda: sa.and_(one_of(deliveries.c.state, FINAL_STATES), deliveries.c.created_ns < _cutoff())
)
_DELETE_ATTEMPTS = _delete_where(delivery_attempts, delivery_attempts.c.delivery_id)
_DELETE_DELIVERY = _delete_where(deliveries, deliveries.c.id)


def _sweep_deliveries(db: Database, cutoff_ns: int) -> tuple[int, bool]:
    """Finished deliveries created before the cutoff, with their attempts; pending ones stay."""
    chosen = [(row[0],) for row in db.fetch(db.sql(_OLD_DELIVERIES), {"cutoff": cutoff_ns})]
    deleted = 0
    for key in chosen:
        deleted += db.run(db.sql(_DELETE_ATTEMPTS), key) + db.run(db.sql(_DELETE_DELIVERY), key)
    return deleted, len(chosen) == CHUNK


_OLD_EXECUTIONS = _ids_of(
    workflow_executions.c.id, lambda: workflow_executions.c.started_ns < _cutoff()
)
_DELETE_STEPS_OF = _delete_where(workflow_steps, workflow_steps.c.execution_id)
_DELETE_EXECUTION = _delete_where(workflow_executions, workflow_executions.c.id)


def _sweep_executions(db: Database, cutoff_ns: int) -> tuple[int, bool]:
    """Executions that started before the cutoff, with all their steps."""
    chosen = [(row[0],) for row in db.fetch(db.sql(_OLD_EXECUTIONS), {"cutoff": cutoff_ns})]
    deleted = 0
    for key in chosen:
        deleted += db.run(db.sql(_DELETE_STEPS_OF), key) + db.run(db.sql(_DELETE_EXECUTION), key)
    return deleted, len(chosen) == CHUNK


class _MetricSweep:
    """Rollups older than the cutoff series by series, then the tiers below the new floor."""

    def __init__(self) -> None:
        self.series: list[int] | None = None

    def rollups(self, db: Database, cutoff_ns: int) -> tuple[int, bool]:
        """Delete old rollups of the next series (up to CHUNK rows in all)."""
        if self.series is None:
            self.series = metrics.series_ids(db)
        deleted = 0
        while self.series and deleted < CHUNK:
            count, more = metrics.sweep_series(db, self.series[-1], cutoff_ns)
            deleted += count
            if not more:
                self.series.pop()
        return deleted, bool(self.series)

    @staticmethod
    def tiers(db: Database, cutoff_ns: int) -> tuple[int, bool]:
        """Drop tier rows below the new floor and series left empty."""
        metrics.sweep_tiers(db, cutoff_ns)
        return 0, False


_STEPS: dict[str, list[Step]] = {
    "traces": [_chunk_delete(spans, spans.c.id, lambda: spans.c.start_ns < _cutoff())],
    "logs": [_sweep_logs],
    "alerts": [
        _chunk_delete(
            alerts, alerts.c.fingerprint,
            lambda: sa.and_(one_of(alerts.c.state, SWEPT_STATES), alerts.c.updated_ns < _cutoff()),
        ),
        _chunk_delete(alert_transitions, alert_transitions.c.id, lambda: alert_transitions.c.time_ns < _cutoff()),
        _chunk_delete(silences, silences.c.id, lambda: silences.c.ends_ns < _cutoff()),
    ],
    "notifications": [_sweep_deliveries, groups.sweep],
    "health": [_chunk_delete(health, health.c.id, lambda: health.c.time_ns < _cutoff())],
    "workflows": [
        _sweep_executions,
        _chunk_delete(workflow_steps, workflow_steps.c.id, lambda: workflow_steps.c.started_ns < _cutoff()),
    ],
}
"""The steps of every signal but metrics, whose sweep keeps per-sweep state (`_MetricSweep`)."""


def _steps(signal: str) -> list[Step]:
    if signal == "metrics":
        sweep = _MetricSweep()
        return [sweep.rollups, sweep.tiers]
    return list(_STEPS[signal])


class Sweep:
    """One signal's retention sweep; call `step` in short write transactions until it returns True."""

    def __init__(self, signal: str, cutoff_ns: int) -> None:
        self.signal = signal
        self.cutoff_ns = cutoff_ns
        self.deleted = 0
        self._steps = _steps(signal)

    def step(self, db: Database) -> bool:
        """Delete one chunk; True when the sweep is complete."""
        deleted, more = self._steps[0](db, self.cutoff_ns)
        self.deleted += deleted
        if not more:
            self._steps.pop(0)
        return not self._steps
