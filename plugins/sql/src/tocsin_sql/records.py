"""The storage protocol methods both SQL backends answer the same way: spans and health results, metric and trace
queries, notification group state, leases, alerts, silences, the outbox and workflows, each one statement
module call inside the backend's read or write transaction.

A backend mixes `SqlRecords` in and provides `_read(job, doing)` and `_write(job, doing)`, which run
`job(db)` on one of its connections (a read snapshot or a write transaction) and name the work in errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tocsin.ext import (
    Alert,
    AlertQuery,
    AlertTransition,
    Delivery,
    DeliveryAttempt,
    DeliveryQuery,
    DeliveryState,
    ExecutionQuery,
    GroupState,
    HealthResult,
    HealthStatus,
    MetricInfo,
    MetricQuery,
    MetricRollup,
    Page,
    SeriesPoints,
    Silence,
    Span,
    SpanQuery,
    WorkflowExecution,
    WorkflowStep,
    check_lease,
    check_query,
    check_query_values,
    check_span_grouping,
    compile_matchers,
)
from tocsin_sql import alerts, groups, health, leases, metrics, outbox, traces, workflows


class SqlRecords:
    """The protocol methods that are one `tocsin_sql` call each, over the backend's `_read` and `_write`."""

    if TYPE_CHECKING:  # provided by the backend

        async def _read(self, job: Any, doing: str) -> Any: ...

        async def _write(self, job: Any, doing: str) -> Any: ...

    async def write_health(self, results: Sequence[HealthResult]) -> None:
        """Append health check results."""
        if results:
            rows = [health.encode(result) for result in results]
            await self._write(lambda db: health.write(db, rows), f"write {len(rows)} health results")

    # -- metrics --------------------------------------------------------------------------------------------
    async def list_metrics(self) -> list[MetricInfo]:
        """Every metric name with its kind, series count and label names, sorted by name."""
        return await self._read(metrics.list_metrics, "list metrics")

    async def query_metrics(self, query: MetricQuery) -> list[SeriesPoints]:
        """Aggregate rollups as the query says (tiers for long ranges, tocsin.storage.rollups.evaluate for the math)."""
        check_query_values(query)
        check_query(query)
        matches = compile_matchers(query.matchers)
        return await self._read(lambda db: metrics.query(db, query, matches), f"query metric {query.name!r}")

    async def read_rollups(self, name: str, start_ns: int, end_ns: int) -> list[MetricRollup]:
        """Every series' rollups of `name` that start in [start_ns, end_ns), ordered by start."""
        return await self._read(lambda db: metrics.read_rollups(db, name, start_ns, end_ns),
                                f"read rollups of metric {name!r}")

    # -- traces -----------------------------------------------------------------------------------------------
    async def get_trace(self, trace_id: str) -> list[Span]:
        """Every span of one trace ordered by start time; empty when unknown."""
        return await self._read(lambda db: traces.get_trace(db, trace_id), f"read trace {trace_id[:40]!r}")

    async def search_spans(self, query: SpanQuery) -> Page[Span]:
        """Spans matching the query, newest first, with cursor pagination."""
        check_query_values(query)
        return await self._read(lambda db: traces.search(db, query), "search spans")

    async def count_spans_by(self, field: str, start_ns: int, end_ns: int,
                             service: str | None = None) -> dict[str, int]:
        """Spans starting in [start_ns, end_ns) (of `service`, when given) per value of `field`."""
        check_span_grouping(field)
        return await self._read(lambda db: traces.count_by(db, field, start_ns, end_ns, service),
                                f"count spans by {field}")

    async def write_spans(self, spans: Sequence[Span]) -> None:
        """Store spans; a later write of the same span replaces it, a colliding span_id never does."""
        if spans:
            rows = [traces.encode(span) for span in spans]
            await self._write(lambda db: traces.write(db, rows), f"write {len(rows)} spans")

    # -- notification grouping state --------------------------------------------------------------------------
    async def save_group_state(self, state: GroupState) -> None:
        """Upsert timers and marks, add firing members and remove the others, in one write transaction."""
        if state.groups or state.members or state.marks:
            await self._write(lambda db: groups.save(db, state), "save notification group state")

    async def load_group_state(self) -> GroupState:
        """Every stored timer, firing member and repeat mark."""
        return await self._read(groups.load, "read notification group state")

    # -- leases -----------------------------------------------------------------------------------------------
    async def acquire_lease(self, name: str, holder: str, ttl_s: float, now_ns: int) -> bool:
        """Take or renew the lease until now + ttl when it is free, expired or `holder`'s (one upsert whose
        update only matches a free, expired or own lease, so processes racing for it cannot both win); True when
        `holder` holds it."""
        check_lease(name, holder, ttl_s, now_ns)
        return await self._write(lambda db: leases.acquire(db, name, holder, ttl_s, now_ns), f"take lease {name!r}")

    async def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up if `holder` holds it."""
        check_lease(name, holder)
        await self._write(lambda db: leases.release(db, name, holder), f"release lease {name!r}")

    async def lease_holder(self, name: str, now_ns: int) -> str | None:
        """Who holds the lease at `now_ns`, or None."""
        check_lease(name, now_ns=now_ns)
        return await self._read(lambda db: leases.holder(db, name, now_ns), f"read lease {name!r}")

    # -- alerts and silences ----------------------------------------------------------------------------------
    async def save_alert(
        self,
        alert: Alert,
        transitions: Sequence[AlertTransition] = (),
        deliveries: Sequence[Delivery] = (),
    ) -> None:
        """Upsert an alert with its new transitions and outbox deliveries in one transaction."""
        row = alerts.encode_alert(alert)
        changes = [alerts.encode_transition(transition) for transition in transitions]
        queued = [outbox.encode_delivery(delivery) for delivery in deliveries]

        def job(db: Any) -> None:
            alerts.save_alert(db, row, changes)
            outbox.enqueue(db, queued)

        await self._write(job, f"save alert {alert.fingerprint!r}")

    async def get_alert(self, fingerprint: str) -> Alert | None:
        """One alert by fingerprint."""
        return await self._read(lambda db: alerts.get_alert(db, fingerprint), "read an alert")

    async def list_alerts(self, query: AlertQuery) -> Page[Alert]:
        """Alerts matching the query, most recently updated first."""
        check_query_values(query)
        matches = compile_matchers(query.matchers)
        return await self._read(lambda db: alerts.list_alerts(db, query, matches), "list alerts")

    async def alert_history(self, fingerprint: str, limit: int = 100) -> list[AlertTransition]:
        """An alert's transitions, oldest first (the last `limit`)."""
        return await self._read(lambda db: alerts.alert_history(db, fingerprint, limit), "read alert history")

    async def transitions_between(self, start_ns: int, end_ns: int) -> list[AlertTransition]:
        """Every transition of every alert in [start_ns, end_ns), oldest first."""
        return await self._read(lambda db: alerts.transitions_between(db, start_ns, end_ns), "read transitions")

    async def save_silence(self, silence: Silence) -> None:
        """Create or replace a silence by id."""
        row = alerts.encode_silence(silence)
        await self._write(lambda db: alerts.save_silence(db, row), f"save silence {silence.id!r}")

    async def list_silences(self, active_at_ns: int | None = None) -> list[Silence]:
        """Every silence (expired ones too), or only those active at a time; by start."""
        return await self._read(lambda db: alerts.list_silences(db, active_at_ns), "list silences")

    async def delete_silence(self, silence_id: str) -> bool:
        """Remove a silence; False when there was none."""
        return await self._write(lambda db: alerts.delete_silence(db, silence_id), f"delete silence {silence_id!r}")

    # -- notification outbox -------------------------------------------------------------------------------
    async def enqueue_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        """Add deliveries to the outbox; an id already there is kept as it is."""
        rows = [outbox.encode_delivery(delivery) for delivery in deliveries]
        if rows:
            await self._write(lambda db: outbox.enqueue(db, rows), f"enqueue {len(rows)} deliveries")

    async def claim_deliveries(self, now_ns: int, limit: int, lease_s: float) -> list[Delivery]:
        """Take up to `limit` due deliveries, oldest first, and lease them (one write transaction)."""
        return await self._write(lambda db: outbox.claim(db, now_ns, limit, lease_s), "claim deliveries")

    async def record_attempt(
        self, attempt: DeliveryAttempt, state: DeliveryState, next_attempt_ns: int | None = None
    ) -> None:
        """Log an attempt and move its delivery to `state`."""
        await self._write(
            lambda db: outbox.record_attempt(db, attempt, state, next_attempt_ns),
            f"record an attempt of delivery {attempt.delivery_id!r}",
        )

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        """One delivery by id."""
        return await self._read(lambda db: outbox.get_delivery(db, delivery_id), "read a delivery")

    async def list_deliveries(self, query: DeliveryQuery) -> Page[Delivery]:
        """Outbox entries, newest first."""
        check_query_values(query)
        return await self._read(lambda db: outbox.list_deliveries(db, query), "list deliveries")

    async def list_attempts(self, delivery_id: str) -> list[DeliveryAttempt]:
        """Every attempt of one delivery, oldest first."""
        return await self._read(lambda db: outbox.list_attempts(db, delivery_id), "list delivery attempts")

    # -- health -----------------------------------------------------------------------------------------------
    async def health_history(
        self,
        component: str,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = 100,
        status: HealthStatus | None = None,
    ) -> list[HealthResult]:
        """A component's results, newest first."""
        return await self._read(
            lambda db: health.history(db, component, start_ns, end_ns, limit, status), "read health history"
        )

    # -- workflows --------------------------------------------------------------------------------------------
    async def save_execution(self, execution: WorkflowExecution) -> None:
        """Create or replace an execution by id."""
        row = workflows.encode_execution(execution)
        await self._write(lambda db: workflows.save_execution(db, row), f"save execution {execution.id!r}")

    async def save_step(self, step: WorkflowStep) -> None:
        """Create or replace a step by (execution_id, name, started_ns)."""
        row = workflows.encode_step(step)
        await self._write(lambda db: workflows.save_step(db, row), f"save step {step.name!r}")

    async def write_workflows(self, executions: Sequence[WorkflowExecution], steps: Sequence[WorkflowStep]) -> None:
        """Create or replace a batch of executions and steps in one transaction; later ones win."""
        if executions or steps:
            encoded = [workflows.encode_execution(e) for e in executions], [workflows.encode_step(s) for s in steps]
            await self._write(lambda db: workflows.write(db, *encoded),
                              f"write {len(executions)} executions and {len(steps)} steps")

    async def get_execution(self, execution_id: str) -> tuple[WorkflowExecution, list[WorkflowStep]] | None:
        """An execution with its steps ordered by start."""
        return await self._read(lambda db: workflows.get_execution(db, execution_id), "read an execution")

    async def list_executions(self, query: ExecutionQuery) -> Page[WorkflowExecution]:
        """Executions matching the query, newest first."""
        check_query_values(query)
        return await self._read(lambda db: workflows.list_executions(db, query), "list executions")
