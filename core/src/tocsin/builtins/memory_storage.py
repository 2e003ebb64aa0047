"""The built-in `memory` storage backend: dicts and lists in the process, gone when it ends.

A plain reference implementation of `tocsin.storage.protocol.StorageBackend` for tests, demos and small embedded
setups; `tocsin.testing.contracts.StorageBackendContract` holds it to the same behaviour as the databases.
Records are copied on the way in and out (a msgpack round trip), so a caller that keeps mutating its
objects sees what it would see with a database: only what it saved. Alerts, silences and the notification
outbox live in `memory_alerts`; copying, filtering and paging in `memory_records`.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import msgspec

from tocsin.builtins.memory_alerts import MemoryAlerts
from tocsin.builtins.memory_records import check_limit, detached, drop_old, in_range, keyset_page
from tocsin.errors import QueryError, StorageError
from tocsin.hookspecs import hookimpl
from tocsin.models import (
    LOG_LEVELS,
    HealthResult,
    HealthStatus,
    LogHit,
    LogRecord,
    MetricInfo,
    MetricRollup,
    SeriesPoints,
    Span,
    WorkflowExecution,
    WorkflowStep,
)
from tocsin.signals.sketch import LogSketch
from tocsin.storage.logquery import parse
from tocsin.storage.matchers import compile_matchers
from tocsin.storage.protocol import (
    RETENTION_SIGNALS,
    ExecutionQuery,
    LogQuery,
    MetricQuery,
    Page,
    Retention,
    SpanQuery,
    StorageStats,
    check_lease,
    check_query_values,
    check_span_grouping,
)
from tocsin.storage.rollups import LabelKey, check_query, evaluate, labels_key

internal_log = logging.getLogger("tocsin")

W = TypeVar("W", bound=Callable[..., Awaitable[Any]])


def _writes(method: W) -> W:
    """A write method that moves the store's change marker (after it ran, whether or not it raised)."""

    @functools.wraps(method)
    async def write(self: MemoryStorage, *args: Any, **kwargs: Any) -> Any:
        try:
            return await method(self, *args, **kwargs)
        finally:
            self._changes += 1

    return write  # type: ignore[return-value]


def _merge_rollups(old: MetricRollup, new: MetricRollup) -> MetricRollup:
    """One rollup for a series and start that was written twice: counts add up, `last` is the newest."""
    sketch = old.sketch or new.sketch
    if old.sketch is not None and new.sketch is not None:
        merged = LogSketch.from_model(old.sketch)
        try:
            merged.merge(new.sketch)
        except ValueError as error:
            raise StorageError(f"cannot merge rollup of {old.name!r} at {old.start_ns}: {error}") from None
        sketch = merged.to_model()
    return msgspec.structs.replace(
        old,
        count=old.count + new.count,
        sum=old.sum + new.sum,
        min=min(old.min, new.min),
        max=max(old.max, new.max),
        last=new.last,
        sketch=sketch,
    )


class MemoryStorage(MemoryAlerts):
    """Keeps every signal in process memory; the reference storage backend, registered as `memory`."""

    class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        """The memory backend has no settings; retention sweeps bound its size."""

    def __init__(self, config: MemoryStorage.Config | None = None) -> None:
        super().__init__()
        self.config = config or MemoryStorage.Config()
        self._series: dict[str, dict[LabelKey, dict[int, MetricRollup]]] = {}
        self._spans: dict[str, Span] = {}
        self._logs: list[LogRecord] = []
        self._last_log_id = 0
        self._health: list[HealthResult] = []
        self._executions: dict[str, WorkflowExecution] = {}
        self._steps: dict[tuple[str, str, int], WorkflowStep] = {}
        self._leases: dict[str, tuple[str, int]] = {}  # name -> (holder, expires_ns)
        self._changes = 0  # the change marker: every write method adds one

    # The alert, silence and outbox writes of MemoryAlerts, moving the change marker too.
    save_alert = _writes(MemoryAlerts.save_alert)
    save_silence = _writes(MemoryAlerts.save_silence)
    delete_silence = _writes(MemoryAlerts.delete_silence)
    enqueue_deliveries = _writes(MemoryAlerts.enqueue_deliveries)
    claim_deliveries = _writes(MemoryAlerts.claim_deliveries)
    record_attempt = _writes(MemoryAlerts.record_attempt)
    save_group_state = _writes(MemoryAlerts.save_group_state)

    async def open(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Nothing to flush; the data stays readable until the object is dropped."""

    # -- writes ------------------------------------------------------------------------------------
    @_writes
    async def write_metrics(self, rollups: Sequence[MetricRollup]) -> None:
        """Store rollups; a rollup for an existing (series, start_ns) is merged into it."""
        for rollup in [detached(rollup) for rollup in rollups]:
            series = self._series.setdefault(rollup.name, {}).setdefault(labels_key(rollup.labels), {})
            old = series.get(rollup.start_ns)
            series[rollup.start_ns] = rollup if old is None else _merge_rollups(old, rollup)

    @_writes
    async def write_spans(self, spans: Sequence[Span]) -> None:
        """Store spans; a stored span is replaced only by itself (same span_id, trace_id and start_ns).

        A span whose span_id is stored for another trace or start time is a different span whose id collided:
        it is not stored (the first is kept) and is counted in a warning.
        """
        collided = 0
        for span in [detached(span) for span in spans]:
            stored = self._spans.get(span.span_id)
            if stored is None or (stored.trace_id, stored.start_ns) == (span.trace_id, span.start_ns):
                self._spans[span.span_id] = span
            else:
                collided += 1
        if collided:
            internal_log.warning(
                "tocsin: %d span(s) not stored: their span_id belongs to another stored span", collided
            )

    @_writes
    async def write_logs(self, records: Sequence[LogRecord]) -> None:
        """Append log records, numbering them from 1 in write order."""
        for record in [detached(record) for record in records]:
            self._last_log_id += 1
            record.id = self._last_log_id
            self._logs.append(record)

    @_writes
    async def write_health(self, results: Sequence[HealthResult]) -> None:
        """Append health check results."""
        self._health.extend(detached(result) for result in results)

    # -- metrics -----------------------------------------------------------------------------------
    async def list_metrics(self) -> list[MetricInfo]:
        """Every metric name with its kind, series count and label names, sorted by name."""
        infos = []
        for name in sorted(self._series):
            series = self._series[name]
            kind = next(iter(next(iter(series.values())).values())).kind
            label_names = sorted({label for key in series for label, _ in key})
            infos.append(MetricInfo(name=name, kind=kind, series=len(series), label_names=label_names))
        return infos

    async def query_metrics(self, query: MetricQuery) -> list[SeriesPoints]:
        """Aggregate the rollups of the matching series (see `tocsin.storage.rollups`)."""
        check_query_values(query)
        check_query(query)
        matches = compile_matchers(query.matchers)
        selected = [
            rollup
            for key, by_start in self._series.get(query.name, {}).items()
            if matches(dict(key))
            for rollup in by_start.values()
        ]
        return evaluate(selected, query)

    async def read_rollups(self, name: str, start_ns: int, end_ns: int) -> list[MetricRollup]:
        """Every series' rollups of `name` that start in [start_ns, end_ns), ordered by start (copies)."""
        found = [detached(rollup) for by_start in self._series.get(name, {}).values()
                 for start, rollup in by_start.items() if start_ns <= start < end_ns]
        return sorted(found, key=lambda rollup: rollup.start_ns)

    # -- traces ------------------------------------------------------------------------------------
    async def get_trace(self, trace_id: str) -> list[Span]:
        """Every span of one trace ordered by start time (then span id); empty when unknown."""
        spans = [span for span in self._spans.values() if span.trace_id == trace_id]
        return [detached(span) for span in sorted(spans, key=lambda span: (span.start_ns, span.span_id))]

    async def search_spans(self, query: SpanQuery) -> Page[Span]:
        """Spans whose start is in [start_ns, end_ns) and that pass every filter, newest start first."""
        check_query_values(query)

        def keep(span: Span) -> bool:
            duration = span.duration_ns
            return (
                (query.service is None or span.service == query.service)
                and (query.name is None or span.name == query.name)
                and (query.status is None or span.status == query.status)
                and (
                    query.min_duration_ns is None
                    or (duration is not None and duration >= query.min_duration_ns)
                )
                and (
                    query.max_duration_ns is None
                    or (duration is not None and duration <= query.max_duration_ns)
                )
                and all(
                    key in span.attributes and span.attributes[key] == value
                    for key, value in query.attributes.items()
                )
                and in_range(span.start_ns, query.start_ns, query.end_ns)
                and (not query.root_only or span.parent_span_id is None)
            )

        matched = [span for span in self._spans.values() if keep(span)]
        return keyset_page(
            matched, lambda span: (span.start_ns, span.span_id), query.limit, query.cursor, tuple[int, str]
        )

    async def count_spans_by(self, field: str, start_ns: int, end_ns: int,
                             service: str | None = None) -> dict[str, int]:
        """Spans starting in [start_ns, end_ns) (of `service`, when given) per value of `field`."""
        check_span_grouping(field)
        return dict(Counter(getattr(span, field) for span in self._spans.values()
                            if start_ns <= span.start_ns < end_ns and (service is None or span.service == service)))

    # -- logs --------------------------------------------------------------------------------------
    async def search_logs(self, query: LogQuery) -> Page[LogHit]:
        """Logs matching the text query and every filter, newest first (time, then id), with a total."""
        check_query_values(query)
        parsed = parse(query.text) if query.text.strip() else None
        if query.level is not None and query.level not in LOG_LEVELS:
            raise QueryError(f"log level {query.level!r} is unknown; use one of {', '.join(LOG_LEVELS)}")
        min_level = LOG_LEVELS.index(query.level) if query.level else 0

        def keep(record: LogRecord) -> bool:
            return (
                LOG_LEVELS.index(record.level) >= min_level
                and (query.service is None or record.service == query.service)
                and (query.trace_id is None or record.trace_id == query.trace_id)
                and (query.span_id is None or record.span_id == query.span_id)
                and (query.execution_id is None or record.execution_id == query.execution_id)
                and in_range(record.time_ns, query.start_ns, query.end_ns)
                and (parsed is None or parsed.matches(record))
            )

        matched = [record for record in self._logs if keep(record)]
        page = keyset_page(
            matched, lambda record: (record.time_ns, record.id), query.limit, query.cursor, tuple[int, int]
        )
        hits = [
            LogHit(
                record=record, snippet=record.message if parsed is None else parsed.highlight(record.message)
            )
            for record in page.items
        ]
        return Page(items=hits, next_cursor=page.next_cursor, total=page.total)


    # -- health ------------------------------------------------------------------------------------
    async def health_history(
        self,
        component: str,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = 100,
        status: HealthStatus | None = None,
    ) -> list[HealthResult]:
        """A component's results in [start_ns, end_ns), newest first (the later write first on a tie)."""
        check_limit(limit)
        found = [
            result
            for result in reversed(self._health)
            if result.component == component
            and (status is None or result.status == status)
            and in_range(result.time_ns, start_ns, end_ns)
        ]
        found.sort(key=lambda result: result.time_ns, reverse=True)
        return [detached(result) for result in found[:limit]]

    # -- workflows ---------------------------------------------------------------------------------
    @_writes
    async def save_execution(self, execution: WorkflowExecution) -> None:
        """Create or replace an execution by id."""
        self._executions[execution.id] = detached(execution)

    @_writes
    async def save_step(self, step: WorkflowStep) -> None:
        """Create or replace a step by (execution_id, name, started_ns)."""
        self._steps[(step.execution_id, step.name, step.started_ns)] = detached(step)

    @_writes
    async def write_workflows(self, executions: Sequence[WorkflowExecution], steps: Sequence[WorkflowStep]) -> None:
        """Create or replace a batch of executions and steps; later ones win."""
        for execution in executions:
            await self.save_execution(execution)
        for step in steps:
            await self.save_step(step)

    async def get_execution(self, execution_id: str) -> tuple[WorkflowExecution, list[WorkflowStep]] | None:
        """An execution with its steps ordered by start (then name)."""
        execution = self._executions.get(execution_id)
        if execution is None:
            return None
        steps = sorted(
            (step for step in self._steps.values() if step.execution_id == execution_id),
            key=lambda step: (step.started_ns, step.name),
        )
        return detached(execution), [detached(step) for step in steps]

    async def list_executions(self, query: ExecutionQuery) -> Page[WorkflowExecution]:
        """Executions passing every filter (start in [start_ns, end_ns)), newest start first."""
        check_query_values(query)
        matched = [
            execution
            for execution in self._executions.values()
            if (query.name is None or execution.name == query.name)
            and (query.status is None or execution.status == query.status)
            and in_range(execution.started_ns, query.start_ns, query.end_ns)
        ]
        return keyset_page(
            matched,
            lambda execution: (execution.started_ns, execution.id),
            query.limit,
            query.cursor,
            tuple[int, str],
        )

    # -- housekeeping ------------------------------------------------------------------------------
    @_writes
    async def sweep(self, retention: Retention, now_ns: int) -> dict[str, int]:
        """Delete rows older than each signal's retention; returns every row deleted, per signal."""
        sweepers: dict[str, Callable[[int], int]] = {
            "metrics": self._sweep_metrics,
            "traces": self._sweep_traces,
            "logs": self._sweep_logs,
            "alerts": self._sweep_alerts,
            "notifications": self._sweep_notifications,
            "health": self._sweep_health,
            "workflows": self._sweep_workflows,
        }
        deleted = {}
        for signal in RETENTION_SIGNALS:
            seconds = getattr(retention, signal)
            deleted[signal] = 0 if seconds is None else sweepers[signal](now_ns - round(seconds * 1e9))
        return deleted

    def _sweep_metrics(self, cutoff_ns: int) -> int:
        deleted = 0
        for name, series in list(self._series.items()):
            for key, by_start in list(series.items()):
                for start_ns in [start_ns for start_ns in by_start if start_ns < cutoff_ns]:
                    del by_start[start_ns]
                    deleted += 1
                if not by_start:
                    del series[key]
            if not series:
                del self._series[name]
        return deleted

    def _sweep_traces(self, cutoff_ns: int) -> int:
        old = [span_id for span_id, span in self._spans.items() if span.start_ns < cutoff_ns]
        for span_id in old:
            del self._spans[span_id]
        return len(old)

    def _sweep_logs(self, cutoff_ns: int) -> int:
        self._logs, deleted = drop_old(self._logs, lambda record: record.time_ns < cutoff_ns)
        return deleted

    def _sweep_health(self, cutoff_ns: int) -> int:
        self._health, deleted = drop_old(self._health, lambda result: result.time_ns < cutoff_ns)
        return deleted

    def _sweep_workflows(self, cutoff_ns: int) -> int:
        """Executions that started before the cutoff, with all their steps, and any older step."""
        old = {execution_id for execution_id, e in self._executions.items() if e.started_ns < cutoff_ns}
        for execution_id in old:
            del self._executions[execution_id]
        old_steps = [
            key
            for key, step in self._steps.items()
            if step.execution_id in old or step.started_ns < cutoff_ns
        ]
        for key in old_steps:
            del self._steps[key]
        return len(old) + len(old_steps)

    async def stats(self) -> StorageStats:
        """Rows per table (bytes are not measured in memory)."""
        rows = {
            "metric_rollups": sum(
                len(by_start) for series in self._series.values() for by_start in series.values()
            ),
            "spans": len(self._spans),
            "logs": len(self._logs),
            "alerts": len(self._alerts),
            "alert_transitions": len(self._transitions),
            "silences": len(self._silences),
            "deliveries": len(self._deliveries),
            "delivery_attempts": sum(len(attempts) for attempts in self._attempts.values()),
            "health": len(self._health),
            "workflow_executions": len(self._executions),
            "workflow_steps": len(self._steps),
        }
        return StorageStats(rows=rows)

    # -- leases ------------------------------------------------------------------------------------
    @_writes
    async def acquire_lease(self, name: str, holder: str, ttl_s: float, now_ns: int) -> bool:
        """Take or renew the lease until now + ttl when it is free, expired or `holder`'s; True when held."""
        check_lease(name, holder, ttl_s, now_ns)
        current = self._leases.get(name)
        if current is not None and current[0] != holder and current[1] > now_ns:
            return False
        self._leases[name] = (holder, now_ns + round(ttl_s * 1e9))
        return True

    @_writes
    async def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up if `holder` holds it."""
        check_lease(name, holder)
        if self._leases.get(name, ("", 0))[0] == holder:
            del self._leases[name]

    async def lease_holder(self, name: str, now_ns: int) -> str | None:
        """Who holds the lease at `now_ns`, or None."""
        check_lease(name, now_ns=now_ns)
        current = self._leases.get(name)
        return current[0] if current is not None and current[1] > now_ns else None

    # -- change feed -------------------------------------------------------------------------------
    async def change_marker(self) -> int:
        """How many write calls this store has had (only this process writes to memory)."""
        return self._changes


@hookimpl
def register_storage_backends(register):
    """Provide the `memory` storage backend."""
    register("memory", MemoryStorage)
