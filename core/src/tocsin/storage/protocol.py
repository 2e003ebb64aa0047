"""The storage protocol every backend implements, and the query types it takes.

A backend is a class registered through `register_storage_backends`; it carries a nested `Config` Struct
(its keys live in the `[storage]` section) and is built as `Backend(config)`, then `await backend.open()`.
Every method is async, takes whole batches, and raises `StorageError` (or `QueryError` for bad queries).
A backend passes every query it is given to `check_query_values` first, so out-of-range values are the same
`QueryError` everywhere instead of whatever the database driver raises. The contract suite in
`tocsin.testing.contracts` holds every backend to the same behaviour.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Generic, Protocol, TypeVar, runtime_checkable

import msgspec

from tocsin.errors import QueryError
from tocsin.models import (
    Aggregate,
    Alert,
    AlertState,
    AlertTransition,
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    GroupState,
    HealthResult,
    HealthStatus,
    LabelMatcher,
    LogHit,
    LogLevel,
    LogRecord,
    MetricInfo,
    MetricRollup,
    RunStatus,
    SeriesPoints,
    Severity,
    Silence,
    Span,
    SpanStatus,
    WorkflowExecution,
    WorkflowStep,
)

T = TypeVar("T")

MIN_NS = -(2**63)
MAX_NS = 2**63 - 1
"""Every `*_ns` value of a query lies in the signed 64-bit range, as every stored time does."""
MAX_QUERY_LIMIT = 10_000
"""The most items one page of a query (`limit`) may ask for; page with the cursor for more."""
SPAN_GROUPINGS = ("service", "name")
"""The span fields `count_spans_by` counts by."""


def check_span_grouping(field: str) -> None:
    """A QueryError unless spans can be counted by `field` (SPAN_GROUPINGS)."""
    if field not in SPAN_GROUPINGS:
        raise QueryError(f"spans are counted by {' or '.join(SPAN_GROUPINGS)}, not {field!r}")


class Query(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of the query types: keyword-only and strict."""


class Page(msgspec.Struct, Generic[T], kw_only=True):
    """One page of results. `next_cursor` is opaque; pass it back for the next page, None at the end.

    `total` counts every match of the query (not just this page) where the backend can afford it.
    """

    items: list[T]
    next_cursor: str | None = None
    total: int | None = None


class MetricQuery(Query, kw_only=True):
    """Aggregate a metric's rollups over [start_ns, end_ns).

    `step_s` None gives one point for the whole range, else one point per step (aligned to start_ns).
    `by` None keeps every series apart; a list groups series by those label names (`[]` merges all).
    Percentiles merge stored sketches; `rate` is the counter increase per second over each step.
    """

    name: str
    start_ns: int
    end_ns: int
    aggregate: Aggregate = "avg"
    step_s: float | None = None
    matchers: list[LabelMatcher] = []
    by: list[str] | None = None


class SpanQuery(Query, kw_only=True):
    """Search spans; every given filter must hold. Newest (by start) first."""

    service: str | None = None
    name: str | None = None
    status: SpanStatus | None = None
    min_duration_ns: int | None = None
    max_duration_ns: int | None = None
    attributes: dict[str, Any] = {}
    start_ns: int | None = None
    end_ns: int | None = None
    root_only: bool = False
    limit: int = 100
    cursor: str | None = None


class LogQuery(Query, kw_only=True):
    """Search logs newest first. `text` uses the log query language of `tocsin.storage.logquery`.

    `level` is a minimum: "warning" returns warning, error and critical.
    """

    text: str = ""
    level: LogLevel | None = None
    service: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    execution_id: str | None = None
    start_ns: int | None = None
    end_ns: int | None = None
    limit: int = 100
    cursor: str | None = None


class AlertQuery(Query, kw_only=True):
    """List alerts, most recently updated first."""

    rule: str | None = None
    states: list[AlertState] = []
    severity: Severity | None = None
    matchers: list[LabelMatcher] = []
    limit: int = 100
    cursor: str | None = None


class DeliveryQuery(Query, kw_only=True):
    """List outbox deliveries, newest first."""

    channel: str | None = None
    fingerprint: str | None = None
    state: DeliveryState | None = None
    limit: int = 100
    cursor: str | None = None


class ExecutionQuery(Query, kw_only=True):
    """List workflow executions, newest (by start) first."""

    name: str | None = None
    status: RunStatus | None = None
    start_ns: int | None = None
    end_ns: int | None = None
    limit: int = 100
    cursor: str | None = None


class Retention(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How long each signal is kept, in seconds; None keeps it forever."""

    metrics: float | None = 30 * 86400
    traces: float | None = 7 * 86400
    logs: float | None = 7 * 86400
    alerts: float | None = 90 * 86400
    notifications: float | None = 30 * 86400
    health: float | None = 30 * 86400
    workflows: float | None = 30 * 86400


class StorageStats(msgspec.Struct, kw_only=True):
    """Row counts per table and the bytes the store takes (0 where unknown, as in memory)."""

    rows: dict[str, int]
    bytes: int = 0


@runtime_checkable
class StorageBackend(Protocol):
    """What tocsin needs from a place to keep its data."""

    Config: ClassVar[type[msgspec.Struct]]

    async def open(self) -> None:
        """Connect, create or upgrade the schema. Called once before any other method."""

    async def close(self) -> None:
        """Flush and release everything. Safe to call twice."""

    # -- writes ------------------------------------------------------------------------------------
    async def write_metrics(self, rollups: Sequence[MetricRollup]) -> None:
        """Store rollups; a rollup for an existing (series, start_ns) is merged into it."""

    async def write_spans(self, spans: Sequence[Span]) -> None:
        """Store spans; a later write of a stored span (same span_id, trace_id and start) replaces it (a live
        span is written, then its end); a different span with a stored span_id never overwrites it."""

    async def write_logs(self, records: Sequence[LogRecord]) -> None:
        """Append log records; ids are assigned in order and grow with every write."""

    async def write_health(self, results: Sequence[HealthResult]) -> None:
        """Append health check results."""

    # -- metrics -----------------------------------------------------------------------------------
    async def list_metrics(self) -> list[MetricInfo]:
        """Every metric name with its kind, series count and label names, sorted by name."""

    async def query_metrics(self, query: MetricQuery) -> list[SeriesPoints]:
        """Aggregate rollups as `MetricQuery` describes; result series sorted by their labels."""

    async def read_rollups(self, name: str, start_ns: int, end_ns: int) -> list[MetricRollup]:
        """Every series' rollups of metric `name` that start in [start_ns, end_ns), ordered by start, as stored
        (finest tier, with sketches; one rollup per series and start, however many writes were merged into it).

        Alert evaluation reads it once per metric to warm its in-memory windows (`tocsin.alerting.windows`).
        Optional in practice: callers check for it with `getattr`, and a backend without it is only slower
        for one window after a process starts (its rules read `query_metrics` meanwhile)."""

    # -- traces ------------------------------------------------------------------------------------
    async def get_trace(self, trace_id: str) -> list[Span]:
        """Every span of one trace ordered by start time; empty when unknown."""

    async def search_spans(self, query: SpanQuery) -> Page[Span]:
        """Spans matching the query, newest first, with cursor pagination."""

    async def count_spans_by(self, field: str, start_ns: int, end_ns: int,
                             service: str | None = None) -> dict[str, int]:
        """How many spans starting in [start_ns, end_ns) (only `service`'s, when given) have each value of
        `field` (SPAN_GROUPINGS: `service` or the span's `name`): the services and operations the API lists.
        Another field is a QueryError.

        Optional in practice: callers check for it with `getattr`; without it the API reads the newest spans
        of the range instead (slower, and no more than one query returns)."""

    # -- logs --------------------------------------------------------------------------------------
    async def search_logs(self, query: LogQuery) -> Page[LogHit]:
        """Logs matching the query, newest first, with a total count and cursor pagination."""

    # -- alerts and silences -----------------------------------------------------------------------
    async def save_alert(
        self,
        alert: Alert,
        transitions: Sequence[AlertTransition] = (),
        deliveries: Sequence[Delivery] = (),
    ) -> None:
        """Upsert an alert with its new transitions and outbox deliveries, atomically where possible."""

    async def get_alert(self, fingerprint: str) -> Alert | None:
        """One alert by fingerprint."""

    async def list_alerts(self, query: AlertQuery) -> Page[Alert]:
        """Alerts matching the query, most recently updated first."""

    async def alert_history(self, fingerprint: str, limit: int = 100) -> list[AlertTransition]:
        """An alert's transitions, oldest first (the last `limit`)."""

    async def transitions_between(self, start_ns: int, end_ns: int) -> list[AlertTransition]:
        """Every transition of every alert in [start_ns, end_ns), oldest first."""

    async def save_silence(self, silence: Silence) -> None:
        """Create or replace a silence by id."""

    async def list_silences(self, active_at_ns: int | None = None) -> list[Silence]:
        """Every silence (expired ones too), or only those active at a time; by start."""

    async def delete_silence(self, silence_id: str) -> bool:
        """Remove a silence; False when there was none."""

    # -- notification outbox -----------------------------------------------------------------------
    async def enqueue_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        """Add deliveries to the outbox."""

    async def claim_deliveries(self, now_ns: int, limit: int, lease_s: float) -> list[Delivery]:
        """Take up to `limit` due deliveries (pending, next_attempt_ns <= now, lease free), oldest first.

        Claimed deliveries move to `sending` with a lease; an expired lease makes them claimable again,
        so a crash between claim and mark re-sends rather than loses.
        """

    async def record_attempt(
        self, attempt: DeliveryAttempt, state: DeliveryState, next_attempt_ns: int | None = None
    ) -> None:
        """Log an attempt and move its delivery to `state` (pending again with `next_attempt_ns` to retry)."""

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        """One delivery by id."""

    async def list_deliveries(self, query: DeliveryQuery) -> Page[Delivery]:
        """Outbox entries, newest first."""

    async def list_attempts(self, delivery_id: str) -> list[DeliveryAttempt]:
        """Every attempt of one delivery, oldest first."""

    # -- notification grouping state ---------------------------------------------------------------
    async def save_group_state(self, state: GroupState) -> None:
        """Apply the router's grouping changes in one transaction: upsert each group timer by (channel,
        group_id) and each repeat mark by (channel, fingerprint); add each member saved with `firing=True` and
        remove each saved with `firing=False` (by channel, group_id, fingerprint; removing an absent one is no
        error). Later entries of one call win over earlier ones with the same key."""

    async def load_group_state(self) -> GroupState:
        """Every stored group timer, firing member and repeat mark (read once when a process starts leading)."""

    # -- health ------------------------------------------------------------------------------------
    async def health_history(
        self,
        component: str,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = 100,
        status: HealthStatus | None = None,
    ) -> list[HealthResult]:
        """A component's results, newest first."""

    # -- workflows ---------------------------------------------------------------------------------
    async def save_execution(self, execution: WorkflowExecution) -> None:
        """Create or replace an execution by id."""

    async def save_step(self, step: WorkflowStep) -> None:
        """Create or replace a step by (execution_id, name, started_ns)."""

    async def write_workflows(self, executions: Sequence[WorkflowExecution], steps: Sequence[WorkflowStep]) -> None:
        """Create or replace a batch of executions (by id) and steps (by key) in one write; later ones win."""

    async def get_execution(self, execution_id: str) -> tuple[WorkflowExecution, list[WorkflowStep]] | None:
        """An execution with its steps ordered by start."""

    async def list_executions(self, query: ExecutionQuery) -> Page[WorkflowExecution]:
        """Executions matching the query, newest first."""

    # -- housekeeping ------------------------------------------------------------------------------
    async def sweep(self, retention: Retention, now_ns: int) -> dict[str, int]:
        """Delete what is older than the retention per signal; returns rows deleted per signal.

        Alerts that are not resolved, silences that have not expired and pending deliveries are kept. The
        notifications retention also deletes group timers whose last flush, and repeat marks whose time, is
        older (with the timers' members); these are not counted.
        """

    async def stats(self) -> StorageStats:
        """Rows per table and bytes used."""

    # -- leases ------------------------------------------------------------------------------------
    async def acquire_lease(self, name: str, holder: str, ttl_s: float, now_ns: int) -> bool:
        """Take the lease `name` for `holder` until `now_ns + ttl_s` when it is free, expired (its end is at or
        before `now_ns`) or already `holder`'s (a renewal moves its end); True when `holder` holds it after the
        call. Atomic across every process sharing the store. Bad arguments are a QueryError (`check_lease`)."""

    async def release_lease(self, name: str, holder: str) -> None:
        """Give the lease `name` up if `holder` holds it (whether or not it expired); else do nothing."""

    async def lease_holder(self, name: str, now_ns: int) -> str | None:
        """Who holds the lease `name` at `now_ns`, or None when it is free or expired."""

    # -- change feed -------------------------------------------------------------------------------
    async def change_marker(self) -> int:
        """A number that grows whenever any process sharing the store commits a write, this one included.

        Cheap enough to call several times a second: a process polls it to learn that others wrote (new logs,
        spans, alert transitions, health results) and then reads what is new by its own cursors. It never
        stays the same across a committed write; it may also move without one (a spurious change only costs
        a read), and reads never move it. Only its changes mean something: each instance counts from its own
        start. SQLite watches `PRAGMA data_version`; a server database can count LISTEN/NOTIFY messages."""


RETENTION_SIGNALS: tuple[str, ...] = tuple(Retention.__struct_fields__)
"""The signal names a retention sweep reports on."""


def check_lease(name: object, holder: object = "-", ttl_s: object = 1.0, now_ns: object = 0) -> None:
    """Raise QueryError unless a lease call's arguments are usable: `name` and `holder` non-empty text (valid
    UTF-8), `ttl_s` a finite number of seconds above 0, and `now_ns` and `now_ns + ttl_s` signed 64-bit times."""
    for field, value in (("lease name", name), ("lease holder", holder)):
        if not isinstance(value, str) or not value:
            raise QueryError(f"{field} must be non-empty text, got {value!r}")
        _check_text(field, value)
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int | float) or not 0 < ttl_s < float("inf"):
        raise QueryError(f"lease ttl_s must be a number of seconds above 0, got {ttl_s!r}")
    _check_ns("lease now_ns", now_ns)
    assert isinstance(now_ns, int)
    _check_ns("lease now_ns + ttl_s", now_ns + round(ttl_s * 1e9))


def check_limit(limit: object, maximum: int | None = None, name: str = "limit") -> None:
    """Refuse a page size that is not a whole number from 1 (to `maximum`, when given) with QueryError."""
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise QueryError(f"{name} must be a whole number, got {limit!r}")
    if limit < 1 or (maximum is not None and limit > maximum):
        allowed = "at least 1" if maximum is None else f"from 1 to {maximum:,}"
        raise QueryError(f"{name} must be {allowed}, got {limit:,}")


def _check_ns(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise QueryError(f"{name} must be a whole number of nanoseconds, got {value!r}")
    if not MIN_NS <= value <= MAX_NS:
        raise QueryError(f"{name} must be from -2**63 to 2**63 - 1 (a signed 64-bit time in ns), got {value}")


def _check_text(name: str, value: object) -> None:
    """Every string in a value (lists, dict keys and values, nested Structs such as matchers) is valid UTF-8."""
    if isinstance(value, str):
        if value.isascii():
            return
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            raise QueryError(
                f"{name} is not valid text: {value[error.start:error.end]!r} at position {error.start} "
                "is a lone surrogate, which UTF-8 cannot hold"
            ) from None
    elif isinstance(value, list | tuple):
        for item in value:
            _check_text(name, item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(f"{name} key", key)
            _check_text(f"{name}[{key!r}]", item)
    elif isinstance(value, msgspec.Struct):
        for field in value.__struct_fields__:
            _check_text(f"{name}.{field}", getattr(value, field))


def check_query_values(query: Query) -> None:
    """Raise QueryError unless every value of a query is in range, for any query type.

    Every backend calls this first in each method taking a query, so the rules are the same everywhere: each
    `*_ns` field is None or a signed 64-bit integer, `limit` is from 1 to MAX_QUERY_LIMIT, and every string (in
    lists, dicts and matchers too) is encodable as UTF-8 — no lone surrogates. The meaning of the values
    (a log search's syntax, a metric query's range and step) is checked where it is used.
    """
    kind = type(query).__name__
    for field in query.__struct_fields__:
        value = getattr(query, field)
        name = f"{kind}.{field}"
        if field == "limit":
            check_limit(value, MAX_QUERY_LIMIT, name)
        elif field.endswith("_ns"):
            if value is not None:
                _check_ns(name, value)
        else:
            _check_text(name, value)
