"""The data tocsin stores and passes around, as msgspec Structs.

Times are integers in nanoseconds since the Unix epoch (`*_ns`), durations are float seconds.
Trace ids are 32 lowercase hex characters and span ids 16, as in W3C trace context.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Severity = Literal["info", "warning", "error", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "error", "critical")

LogLevel = Literal["debug", "info", "warning", "error", "critical"]
LOG_LEVELS: tuple[LogLevel, ...] = ("debug", "info", "warning", "error", "critical")

MetricKind = Literal["counter", "gauge", "histogram"]
Aggregate = Literal["avg", "min", "max", "sum", "count", "rate", "last", "p50", "p95", "p99"]
AGGREGATES: tuple[Aggregate, ...] = ("avg", "min", "max", "sum", "count", "rate", "last", "p50", "p95", "p99")

SpanKind = Literal["internal", "server", "client", "producer", "consumer"]
SpanStatus = Literal["unset", "ok", "error"]

AlertState = Literal["inactive", "pending", "firing", "recovering", "resolved", "nodata", "error"]
HandlingState = Literal["active", "acknowledged", "resolved"]
DeliveryState = Literal["pending", "sending", "sent", "failed", "dropped"]
AttemptOutcome = Literal["sent", "retryable", "permanent", "rate_limited", "timeout"]
HealthStatus = Literal["healthy", "degraded", "unhealthy", "unknown"]
RunStatus = Literal["running", "succeeded", "failed", "cancelled"]

Labels = dict[str, str]
Attributes = dict[str, Any]


class Model(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of every stored record: keyword-only and strict about unknown fields."""


# -- Metrics ----------------------------------------------------------------------------------------


class Sketch(Model, kw_only=True):
    """A mergeable relative-error sketch (DDSketch-style log buckets) in its stored form.

    `gamma` fixes the bucket layout; bucket `i` of `positive` holds values in (gamma^(i-1), gamma^i],
    `negative` mirrors it for negative values, and `zeros` counts values of exactly 0.
    """

    gamma: float
    positive: dict[int, int] = {}
    negative: dict[int, int] = {}
    zeros: int = 0


class MetricRollup(Model, kw_only=True):
    """What one series did during one flush interval starting at `start_ns`.

    Counters: `sum` is the increase in the interval. Gauges: `last` is the value at the end.
    Histograms: `count`, `sum`, `min`, `max` and `sketch` of the observations.
    """

    name: str
    kind: MetricKind
    labels: Labels = {}
    start_ns: int
    interval_s: float
    count: int
    sum: float
    min: float
    max: float
    last: float
    sketch: Sketch | None = None


class MetricInfo(Model, kw_only=True):
    """A metric name known to the store, with its kind and how many series it has."""

    name: str
    kind: MetricKind
    series: int
    label_names: list[str] = []


class SeriesPoints(Model, kw_only=True):
    """One result series of a metric query: its labels and (time_ns, value) points in time order."""

    labels: Labels
    points: list[tuple[int, float]]


# -- Traces -----------------------------------------------------------------------------------------


class SpanEvent(Model, kw_only=True):
    """A timestamped annotation on a span (for example an exception)."""

    name: str
    time_ns: int
    attributes: Attributes = {}


class SpanLink(Model, kw_only=True):
    """A pointer from a span to a span in another (or the same) trace."""

    trace_id: str
    span_id: str
    attributes: Attributes = {}


class Span(Model, kw_only=True):
    """A unit of work in a trace. `end_ns` is None while the span is still running."""

    trace_id: str
    span_id: str
    parent_span_id: str | None = None
    name: str
    service: str = ""
    kind: SpanKind = "internal"
    start_ns: int
    end_ns: int | None = None
    status: SpanStatus = "unset"
    status_message: str = ""
    attributes: Attributes = {}
    events: list[SpanEvent] = []
    links: list[SpanLink] = []

    @property
    def duration_ns(self) -> int | None:
        """Nanoseconds from start to end, or None while running."""
        return None if self.end_ns is None else self.end_ns - self.start_ns


# -- Logs -------------------------------------------------------------------------------------------


class LogRecord(Model, kw_only=True, gc=False):
    """A structured log record. `id` is assigned by the storage backend and orders records newest-last."""

    time_ns: int
    level: LogLevel
    message: str
    service: str = ""
    logger: str = ""
    trace_id: str | None = None
    span_id: str | None = None
    execution_id: str | None = None
    step: str | None = None
    attributes: Attributes = {}
    id: int | None = None


class LogHit(Model, kw_only=True):
    """A log search result: the record and its message with matches marked by `[` and `]`."""

    record: LogRecord
    snippet: str


# -- Alerts -----------------------------------------------------------------------------------------


class Alert(Model, kw_only=True):
    """One alert instance: a rule plus a label set (`fingerprint`), with both state axes."""

    fingerprint: str
    rule: str
    labels: Labels = {}
    annotations: dict[str, str] = {}
    severity: Severity = "warning"
    state: AlertState = "inactive"
    handling: HandlingState = "active"
    value: float | None = None
    state_reason: str = ""
    active_at_ns: int | None = None
    fired_at_ns: int | None = None
    resolved_at_ns: int | None = None
    keep_firing_since_ns: int | None = None
    last_eval_ns: int | None = None
    last_notified_ns: int | None = None
    episode: int = 0
    acknowledged_by: str | None = None
    ack_comment: str | None = None
    ack_until_ns: int | None = None
    silenced_by: list[str] = []
    inhibited_by: list[str] = []
    flapping: bool = False
    updated_ns: int = 0


class AlertTransition(Model, kw_only=True):
    """A stored change of an alert's evaluation or handling state."""

    fingerprint: str
    rule: str
    time_ns: int
    from_state: str
    to_state: str
    value: float | None = None
    reason: str = ""
    actor: str | None = None


class LabelMatcher(Model, kw_only=True):
    """A Prometheus-style label matcher: `=`, `!=`, `=~` (full-match regex) or `!~`."""

    label: str
    op: Literal["=", "!=", "=~", "!~"] = "="
    value: str


class Silence(Model, kw_only=True):
    """Mutes notifications for alerts matching every matcher between `starts_ns` and `ends_ns`."""

    id: str
    matchers: list[LabelMatcher]
    starts_ns: int
    ends_ns: int
    created_by: str
    comment: str = ""
    until_resolved: bool = False
    created_ns: int = 0


# -- Notifications ----------------------------------------------------------------------------------


class Notification(Model, kw_only=True):
    """What a channel is asked to send: rendered text plus the alert it is about."""

    title: str
    body: str
    severity: Severity = "warning"
    kind: Literal["firing", "resolved", "acknowledged", "test", "failed"] = "firing"
    alert: Alert | None = None
    """The first alert of the message (kept for channels that send one alert)."""
    alerts: list[Alert] = []
    """Every alert of the message, firing and resolved, in message order (set by the dispatcher)."""
    alert_kinds: list[str] = []
    """The event kind of each of `alerts` (firing, resolved, acknowledged), in the same order."""
    idempotency_key: str = ""
    links: dict[str, str] = {}

    def alert_events(self) -> list[tuple[str, Alert]]:
        """(kind, alert) pairs for every alert of the message; just `alert` when `alerts` was not filled."""
        if self.alerts:
            kinds = self.alert_kinds if len(self.alert_kinds) == len(self.alerts) else [self.kind] * len(self.alerts)
            return list(zip(kinds, self.alerts, strict=True))
        return [(self.kind, self.alert)] if self.alert is not None else []


class Delivery(Model, kw_only=True):
    """An outbox entry: one notification for one channel, retried until sent or given up."""

    id: str
    channel: str
    fingerprint: str
    kind: str
    idempotency_key: str
    payload: dict[str, Any] = {}
    state: DeliveryState = "pending"
    attempts: int = 0
    created_ns: int
    next_attempt_ns: int
    lease_until_ns: int | None = None
    sent_ns: int | None = None
    last_error: str = ""


class DeliveryAttempt(Model, kw_only=True):
    """One try at sending a delivery: outcome, latency and a scrubbed, capped error."""

    delivery_id: str
    attempt: int
    time_ns: int
    outcome: AttemptOutcome
    latency_s: float
    status_code: int | None = None
    error: str = ""


class NotifyGroup(Model, kw_only=True):
    """A notification group's timer on one channel: its first flush and the latest flush booked so far."""

    channel: str
    group_id: str
    first_ns: int
    last_ns: int


class GroupMember(Model, kw_only=True):
    """A firing alert of a notification group; saved with `firing=False` it leaves the group."""

    channel: str
    group_id: str
    fingerprint: str
    firing: bool = True


class RepeatMark(Model, kw_only=True):
    """When a channel was last sent a firing notification of an alert's episode (for `repeat_interval`)."""

    channel: str
    fingerprint: str
    episode: int
    time_ns: int


class GroupState(Model, kw_only=True):
    """Notification grouping state kept in storage so a restart continues each group and repeat schedule."""

    groups: list[NotifyGroup] = []
    members: list[GroupMember] = []
    marks: list[RepeatMark] = []


# -- Health -----------------------------------------------------------------------------------------


class HealthResult(Model, kw_only=True):
    """The outcome of one health check run for one component."""

    component: str
    status: HealthStatus
    time_ns: int
    latency_s: float = 0.0
    message: str = ""
    observed: float | None = None
    details: dict[str, Any] = {}


# -- Workflows --------------------------------------------------------------------------------------


class WorkflowStep(Model, kw_only=True):
    """One step of a workflow execution."""

    execution_id: str
    name: str
    status: RunStatus = "running"
    started_ns: int
    ended_ns: int | None = None
    span_id: str | None = None
    error: str | None = None
    traceback: str | None = None


class WorkflowExecution(Model, kw_only=True):
    """One run of a named workflow; it is also a trace whose root span is `span_id`."""

    id: str
    name: str
    status: RunStatus = "running"
    started_ns: int
    ended_ns: int | None = None
    params: dict[str, Any] = {}
    trace_id: str | None = None
    span_id: str | None = None
    error: str | None = None


# -- Events -----------------------------------------------------------------------------------------


class Event(Model, kw_only=True):
    """Something that happened inside tocsin, published on the event bus and to `on_event` hooks.

    `topic` is one of alerts, metrics, logs, traces, health, workflows, notifications, system.
    """

    topic: str
    type: str
    time_ns: int
    data: dict[str, Any] = {}
