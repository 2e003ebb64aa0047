"""The built-in `memory` storage backend: dicts and lists in the process, gone when it ends.

A plain reference implementation of `tocsin.storage.protocol.StorageBackend` for tests, demos and small embedded
setups; `tocsin.testing.contracts.StorageBackendContract` holds it to the same behaviour as the databases.
Records are copied on the way in and out (a msgpack round trip), so a caller that keeps mutating its
objects sees what it would see with a database: only what it saved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import msgspec

from tocsin.errors import QueryError, StorageError
from tocsin.hookspecs import hookimpl
from tocsin.models import (
    LOG_LEVELS,
    Alert,
    AlertTransition,
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    HealthResult,
    HealthStatus,
    LogHit,
    LogRecord,
    MetricInfo,
    MetricRollup,
    SeriesPoints,
    Silence,
    Span,
    WorkflowExecution,
    WorkflowStep,
)
from tocsin.signals.sketch import LogSketch
from tocsin.storage.cursors import decode_cursor, encode_cursor
from tocsin.storage.logquery import parse
from tocsin.storage.matchers import compile_matchers
from tocsin.storage.protocol import (
    RETENTION_SIGNALS,
    AlertQuery,
    DeliveryQuery,
    ExecutionQuery,
    LogQuery,
    MetricQuery,
    Page,
    Retention,
    SpanQuery,
    StorageStats,
)
from tocsin.storage.rollups import LabelKey, check_query, evaluate, labels_key

R = TypeVar("R", bound=msgspec.Struct)

FINAL_DELIVERY_STATES: frozenset[str] = frozenset({"sent", "failed", "dropped"})
SWEPT_ALERT_STATES: frozenset[str] = frozenset({"resolved", "inactive"})
"""Alert states a retention sweep may delete; every other state is something still going on."""


def _detached(record: R) -> R:
    """A deep copy sharing nothing with the caller, as a database round trip would give."""
    try:
        return msgspec.msgpack.decode(msgspec.msgpack.encode(record), type=type(record))
    except (TypeError, OverflowError, msgspec.MsgspecError) as error:
        raise StorageError(f"cannot store {type(record).__name__}: {error}") from None


def _in_range(time_ns: int, start_ns: int | None, end_ns: int | None) -> bool:
    return (start_ns is None or time_ns >= start_ns) and (end_ns is None or time_ns < end_ns)


def _drop_old(records: list[R], is_old: Callable[[R], bool]) -> tuple[list[R], int]:
    """The records to keep and how many were dropped."""
    kept = [record for record in records if not is_old(record)]
    return kept, len(records) - len(kept)


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise QueryError(f"limit must be at least 1, got {limit}")


def _page(
    items: list[R],
    key: Callable[[R], tuple[Any, ...]],
    limit: int,
    cursor: str | None,
    shape: type[tuple[Any, ...]],
) -> Page[R]:
    """Newest-first keyset pagination: sort by `key` descending; the cursor is the last key served."""
    _check_limit(limit)
    ordered = sorted(items, key=key, reverse=True)
    total = len(ordered)
    if cursor is not None:
        after = decode_cursor(cursor, shape)
        ordered = [item for item in ordered if key(item) < after]
    served = ordered[:limit]
    next_cursor = encode_cursor(key(served[-1])) if len(ordered) > limit else None
    return Page(items=[_detached(item) for item in served], next_cursor=next_cursor, total=total)


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


class MemoryStorage:
    """Keeps every signal in process memory; the reference storage backend, registered as `memory`."""

    class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        """The memory backend has no settings; retention sweeps bound its size."""

    def __init__(self, config: MemoryStorage.Config | None = None) -> None:
        self.config = config or MemoryStorage.Config()
        self._series: dict[str, dict[LabelKey, dict[int, MetricRollup]]] = {}
        self._spans: dict[str, Span] = {}
        self._logs: list[LogRecord] = []
        self._last_log_id = 0
        self._health: list[HealthResult] = []
        self._alerts: dict[str, Alert] = {}
        self._transitions: list[AlertTransition] = []
        self._silences: dict[str, Silence] = {}
        self._deliveries: dict[str, Delivery] = {}
        self._attempts: dict[str, list[DeliveryAttempt]] = {}
        self._executions: dict[str, WorkflowExecution] = {}
        self._steps: dict[tuple[str, str, int], WorkflowStep] = {}

    async def open(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Nothing to flush; the data stays readable until the object is dropped."""

    # -- writes ------------------------------------------------------------------------------------
    async def write_metrics(self, rollups: Sequence[MetricRollup]) -> None:
        """Store rollups; a rollup for an existing (series, start_ns) is merged into it."""
        for rollup in [_detached(rollup) for rollup in rollups]:
            series = self._series.setdefault(rollup.name, {}).setdefault(labels_key(rollup.labels), {})
            old = series.get(rollup.start_ns)
            series[rollup.start_ns] = rollup if old is None else _merge_rollups(old, rollup)

    async def write_spans(self, spans: Sequence[Span]) -> None:
        """Store spans; a span whose span_id exists replaces it."""
        for span in [_detached(span) for span in spans]:
            self._spans[span.span_id] = span

    async def write_logs(self, records: Sequence[LogRecord]) -> None:
        """Append log records, numbering them from 1 in write order."""
        for record in [_detached(record) for record in records]:
            self._last_log_id += 1
            record.id = self._last_log_id
            self._logs.append(record)

    async def write_health(self, results: Sequence[HealthResult]) -> None:
        """Append health check results."""
        self._health.extend(_detached(result) for result in results)

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
        check_query(query)
        matches = compile_matchers(query.matchers)
        selected = [
            rollup
            for key, by_start in self._series.get(query.name, {}).items()
            if matches(dict(key))
            for rollup in by_start.values()
        ]
        return evaluate(selected, query)

    # -- traces ------------------------------------------------------------------------------------
    async def get_trace(self, trace_id: str) -> list[Span]:
        """Every span of one trace ordered by start time (then span id); empty when unknown."""
        spans = [span for span in self._spans.values() if span.trace_id == trace_id]
        return [_detached(span) for span in sorted(spans, key=lambda span: (span.start_ns, span.span_id))]

    async def search_spans(self, query: SpanQuery) -> Page[Span]:
        """Spans whose start is in [start_ns, end_ns) and that pass every filter, newest start first."""

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
                and _in_range(span.start_ns, query.start_ns, query.end_ns)
                and (not query.root_only or span.parent_span_id is None)
            )

        matched = [span for span in self._spans.values() if keep(span)]
        return _page(
            matched, lambda span: (span.start_ns, span.span_id), query.limit, query.cursor, tuple[int, str]
        )

    # -- logs --------------------------------------------------------------------------------------
    async def search_logs(self, query: LogQuery) -> Page[LogHit]:
        """Logs matching the text query and every filter, newest first (time, then id), with a total."""
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
                and _in_range(record.time_ns, query.start_ns, query.end_ns)
                and (parsed is None or parsed.matches(record))
            )

        matched = [record for record in self._logs if keep(record)]
        page = _page(
            matched, lambda record: (record.time_ns, record.id), query.limit, query.cursor, tuple[int, int]
        )
        hits = [
            LogHit(
                record=record, snippet=record.message if parsed is None else parsed.highlight(record.message)
            )
            for record in page.items
        ]
        return Page(items=hits, next_cursor=page.next_cursor, total=page.total)

    # -- alerts and silences -----------------------------------------------------------------------
    async def save_alert(
        self,
        alert: Alert,
        transitions: Sequence[AlertTransition] = (),
        deliveries: Sequence[Delivery] = (),
    ) -> None:
        """Upsert an alert with its new transitions and outbox deliveries, all or nothing."""
        stored = _detached(alert)
        new_transitions = [_detached(transition) for transition in transitions]
        new_deliveries = [_detached(delivery) for delivery in deliveries]
        self._alerts[stored.fingerprint] = stored
        self._transitions.extend(new_transitions)
        self._add_deliveries(new_deliveries)

    async def get_alert(self, fingerprint: str) -> Alert | None:
        """One alert by fingerprint."""
        alert = self._alerts.get(fingerprint)
        return None if alert is None else _detached(alert)

    async def list_alerts(self, query: AlertQuery) -> Page[Alert]:
        """Alerts passing every filter (`states`: any of them), most recently updated first."""
        matches = compile_matchers(query.matchers)
        matched = [
            alert
            for alert in self._alerts.values()
            if (query.rule is None or alert.rule == query.rule)
            and (not query.states or alert.state in query.states)
            and (query.severity is None or alert.severity == query.severity)
            and matches(alert.labels)
        ]
        return _page(
            matched,
            lambda alert: (alert.updated_ns, alert.fingerprint),
            query.limit,
            query.cursor,
            tuple[int, str],
        )

    async def alert_history(self, fingerprint: str, limit: int = 100) -> list[AlertTransition]:
        """An alert's transitions, oldest first (the last `limit`)."""
        _check_limit(limit)
        history = [transition for transition in self._transitions if transition.fingerprint == fingerprint]
        history.sort(key=lambda transition: transition.time_ns)
        return [_detached(transition) for transition in history[-limit:]]

    async def transitions_between(self, start_ns: int, end_ns: int) -> list[AlertTransition]:
        """Every transition of every alert in [start_ns, end_ns), oldest first."""
        found = [
            transition for transition in self._transitions if _in_range(transition.time_ns, start_ns, end_ns)
        ]
        found.sort(key=lambda transition: transition.time_ns)
        return [_detached(transition) for transition in found]

    async def save_silence(self, silence: Silence) -> None:
        """Create or replace a silence by id."""
        self._silences[silence.id] = _detached(silence)

    async def list_silences(self, active_at_ns: int | None = None) -> list[Silence]:
        """Every silence, or those with starts_ns <= active_at_ns < ends_ns; ordered by start, then id."""
        silences = [
            silence
            for silence in self._silences.values()
            if active_at_ns is None or silence.starts_ns <= active_at_ns < silence.ends_ns
        ]
        silences.sort(key=lambda silence: (silence.starts_ns, silence.id))
        return [_detached(silence) for silence in silences]

    async def delete_silence(self, silence_id: str) -> bool:
        """Remove a silence; False when there was none."""
        return self._silences.pop(silence_id, None) is not None

    # -- notification outbox -----------------------------------------------------------------------
    def _add_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            self._deliveries.setdefault(delivery.id, delivery)

    async def enqueue_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        """Add deliveries to the outbox; an id already there is left as it is (enqueueing is idempotent)."""
        self._add_deliveries([_detached(delivery) for delivery in deliveries])

    async def claim_deliveries(self, now_ns: int, limit: int, lease_s: float) -> list[Delivery]:
        """Take up to `limit` due deliveries, oldest (created) first, and lease them for `lease_s`."""
        due = [
            delivery
            for delivery in self._deliveries.values()
            if delivery.state in ("pending", "sending")
            and delivery.next_attempt_ns <= now_ns
            and (delivery.lease_until_ns is None or delivery.lease_until_ns <= now_ns)
        ]
        due.sort(key=lambda delivery: (delivery.created_ns, delivery.id))
        claimed = []
        for delivery in due[: max(limit, 0)]:
            leased = msgspec.structs.replace(
                delivery, state="sending", lease_until_ns=now_ns + round(lease_s * 1e9)
            )
            self._deliveries[delivery.id] = leased
            claimed.append(_detached(leased))
        return claimed

    async def record_attempt(
        self, attempt: DeliveryAttempt, state: DeliveryState, next_attempt_ns: int | None = None
    ) -> None:
        """Log an attempt and move its delivery to `state`, releasing the lease."""
        delivery = self._deliveries.get(attempt.delivery_id)
        if delivery is None:
            raise StorageError(f"cannot record an attempt for unknown delivery {attempt.delivery_id!r}")
        self._attempts.setdefault(delivery.id, []).append(_detached(attempt))
        self._deliveries[delivery.id] = msgspec.structs.replace(
            delivery,
            state=state,
            attempts=delivery.attempts + 1,
            lease_until_ns=None,
            last_error=attempt.error,
            sent_ns=attempt.time_ns if state == "sent" else delivery.sent_ns,
            next_attempt_ns=delivery.next_attempt_ns if next_attempt_ns is None else next_attempt_ns,
        )

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        """One delivery by id."""
        delivery = self._deliveries.get(delivery_id)
        return None if delivery is None else _detached(delivery)

    async def list_deliveries(self, query: DeliveryQuery) -> Page[Delivery]:
        """Outbox entries passing every filter, newest (created) first."""
        matched = [
            delivery
            for delivery in self._deliveries.values()
            if (query.channel is None or delivery.channel == query.channel)
            and (query.fingerprint is None or delivery.fingerprint == query.fingerprint)
            and (query.state is None or delivery.state == query.state)
        ]
        return _page(
            matched,
            lambda delivery: (delivery.created_ns, delivery.id),
            query.limit,
            query.cursor,
            tuple[int, str],
        )

    async def list_attempts(self, delivery_id: str) -> list[DeliveryAttempt]:
        """Every attempt of one delivery, oldest first."""
        attempts = sorted(self._attempts.get(delivery_id, []), key=lambda attempt: attempt.time_ns)
        return [_detached(attempt) for attempt in attempts]

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
        _check_limit(limit)
        found = [
            result
            for result in reversed(self._health)
            if result.component == component
            and (status is None or result.status == status)
            and _in_range(result.time_ns, start_ns, end_ns)
        ]
        found.sort(key=lambda result: result.time_ns, reverse=True)
        return [_detached(result) for result in found[:limit]]

    # -- workflows ---------------------------------------------------------------------------------
    async def save_execution(self, execution: WorkflowExecution) -> None:
        """Create or replace an execution by id."""
        self._executions[execution.id] = _detached(execution)

    async def save_step(self, step: WorkflowStep) -> None:
        """Create or replace a step by (execution_id, name, started_ns)."""
        self._steps[(step.execution_id, step.name, step.started_ns)] = _detached(step)

    async def get_execution(self, execution_id: str) -> tuple[WorkflowExecution, list[WorkflowStep]] | None:
        """An execution with its steps ordered by start (then name)."""
        execution = self._executions.get(execution_id)
        if execution is None:
            return None
        steps = sorted(
            (step for step in self._steps.values() if step.execution_id == execution_id),
            key=lambda step: (step.started_ns, step.name),
        )
        return _detached(execution), [_detached(step) for step in steps]

    async def list_executions(self, query: ExecutionQuery) -> Page[WorkflowExecution]:
        """Executions passing every filter (start in [start_ns, end_ns)), newest start first."""
        matched = [
            execution
            for execution in self._executions.values()
            if (query.name is None or execution.name == query.name)
            and (query.status is None or execution.status == query.status)
            and _in_range(execution.started_ns, query.start_ns, query.end_ns)
        ]
        return _page(
            matched,
            lambda execution: (execution.started_ns, execution.id),
            query.limit,
            query.cursor,
            tuple[int, str],
        )

    # -- housekeeping ------------------------------------------------------------------------------
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
        self._logs, deleted = _drop_old(self._logs, lambda record: record.time_ns < cutoff_ns)
        return deleted

    def _sweep_alerts(self, cutoff_ns: int) -> int:
        """Ended alerts, old transitions and long-expired silences; live alerts stay whatever their age."""
        old_alerts = [
            fingerprint
            for fingerprint, alert in self._alerts.items()
            if alert.state in SWEPT_ALERT_STATES and alert.updated_ns < cutoff_ns
        ]
        for fingerprint in old_alerts:
            del self._alerts[fingerprint]
        self._transitions, old_transitions = _drop_old(self._transitions, lambda t: t.time_ns < cutoff_ns)
        old_silences = [
            silence_id for silence_id, silence in self._silences.items() if silence.ends_ns < cutoff_ns
        ]
        for silence_id in old_silences:
            del self._silences[silence_id]
        return len(old_alerts) + old_transitions + len(old_silences)

    def _sweep_notifications(self, cutoff_ns: int) -> int:
        """Finished deliveries with their attempts; pending and in-flight ones stay."""
        old = [
            delivery_id
            for delivery_id, delivery in self._deliveries.items()
            if delivery.state in FINAL_DELIVERY_STATES and delivery.created_ns < cutoff_ns
        ]
        deleted = len(old)
        for delivery_id in old:
            del self._deliveries[delivery_id]
            deleted += len(self._attempts.pop(delivery_id, []))
        return deleted

    def _sweep_health(self, cutoff_ns: int) -> int:
        self._health, deleted = _drop_old(self._health, lambda result: result.time_ns < cutoff_ns)
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


@hookimpl
def register_storage_backends(register):
    """Provide the `memory` storage backend."""
    register("memory", MemoryStorage)
